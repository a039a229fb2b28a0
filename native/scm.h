/*
 * Handing file descriptors from one process to another over a Unix socket (SCM_RIGHTS),
 * for the takeover restart: the old vtepd sends its TAP and underlay socket fds and a
 * snapshot (an opaque payload) to the new one, so the TAP devices never disappear.
 * Also the systemd notify datagram (sd_notify(3)), which Node cannot send itself.
 *
 * Wire protocol on a SOCK_STREAM Unix socket, all integers little endian:
 *   header   16 bytes: u32 magic "VTFD" (0x44465456), u32 nfds, u64 payload length
 *   fd parts while fds remain: u32 count (1..SCM_CHUNK) carrying `count` fds in one
 *            SCM_RIGHTS control message
 *   payload  payload length bytes
 *   ack      1 byte 'K' from the receiver once it holds every fd and the payload
 * The sender keeps its own fds until the ack, so a receiver that dies midway loses
 * nothing: the sender still holds every device.
 *
 * Functions return 0 or a positive errno.
 */
#ifndef VTEPD_SCM_H
#define VTEPD_SCM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SCM_MAGIC 0x44465456u
/* fds per control message (the kernel's SCM_MAX_FD is 253). */
#define SCM_CHUNK 250
/* Most fds and payload bytes one handover carries. */
#define SCM_MAX_FDS 65536
#define SCM_MAX_PAYLOAD (1ull << 30)

/* Bind and listen on `path` (a stale socket file there is replaced). *fd: close-on-exec. */
int scm_listen(const char *path, int *fd);

/*
 * Wait up to timeout_ms (0: do not wait) for a sender on a listening fd, then receive
 * everything from it with an I/O timeout of io_timeout_ms and send the ack.
 * ETIMEDOUT: nobody connected in time. On success *fds (malloc()ed, *nfds entries, each
 * close-on-exec) and *payload (malloc()ed, *len bytes) belong to the caller.
 */
int scm_accept(int lfd, int timeout_ms, int io_timeout_ms, int **fds, size_t *nfds, uint8_t **payload,
               size_t *len);

/*
 * Connect to `path`, send fds and payload, wait up to timeout_ms for the ack. The fds
 * stay open in the caller (close them after the ack, or exit).
 */
int scm_send(const char *path, const int *fds, size_t nfds, const uint8_t *payload, size_t len, int timeout_ms);

/*
 * Send `state` (e.g. "READY=1\nMAINPID=123") to $NOTIFY_SOCKET. *sent = 0 when the
 * variable is unset (not started by systemd); that is not an error.
 */
int scm_sd_notify(const char *state, int *sent);

#ifdef __cplusplus
}
#endif

#endif
