/*
 * Underlay UDP sockets: one receive socket bound to local:port, and a pool of send
 * sockets bound to distinct source ports (the inner flow hash picks one, so a flow keeps
 * its outer 5-tuple). IPv4 and IPv6 both: addresses travel as sockaddr_storage.
 */
#ifndef VTEPD_UDP_H
#define VTEPD_UDP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RFC 7348 §5: source ports from the dynamic range. */
#define UDP_SRC_PORT_MIN 49152
#define UDP_SRC_PORT_MAX 65535
/* Socket buffers: enough for a few ms of 10 Gbit/s bursts. */
#define UDP_SOCKBUF_BYTES (4 << 20)

/* Parse a literal IPv4 or IPv6 address (no names, no scope) with a port. 0 or EINVAL. */
int sockaddr_from_string(const char *text, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
uint16_t sockaddr_port(const struct sockaddr_storage *ss);

/*
 * Open the receive socket bound to `local` (non-blocking, large SO_RCVBUF). With reuseport,
 * SO_REUSEPORT before bind: every socket of a queue group is opened so, and the kernel
 * spreads datagrams over them by 4-tuple hash (a socket without it keeps the port its own:
 * a second daemon on the port fails with EADDRINUSE).
 * Returns 0 or errno; on failure *step names what failed ("bind", ...).
 */
int udp_rx_open(const struct sockaddr_storage *local, socklen_t len, bool reuseport, int *fd, const char **step);

/*
 * Open n send sockets bound to local's address and distinct ports in 49152..65535 (random
 * start, next port on EADDRINUSE; `avoid` is never used). Don't-fragment, UDP checksum 0
 * over IPv4, non-blocking. Returns 0 or errno with *step; on failure nothing stays open.
 */
int udp_tx_pool_open(const struct sockaddr_storage *local, socklen_t len, unsigned n, uint16_t avoid,
                     int *fds, const char **step);

/* Ask for UDP GRO on the receive socket (Linux 5.0): false if the kernel refuses. */
bool udp_rx_gro_enable(int fd);
/* Does the kernel know UDP_SEGMENT (Linux 4.18)? Probed on a send socket. */
bool udp_tx_gso_probe(int fd);

/*
 * Check and configure sockets handed over by another process (SCM_RIGHTS): fds[0] the
 * receive socket bound to local (address and port), fds[1..n-1] send sockets bound to
 * local's address and distinct other ports; all UDP of local's family. Sets non-blocking,
 * close-on-exec and the options udp_rx_open/udp_tx_pool_open set. Closes nothing.
 * Returns 0 or errno with *step.
 */
int udp_adopt(const struct sockaddr_storage *local, const int *fds, unsigned n, const char **step);

#ifdef __cplusplus
}
#endif

#endif
