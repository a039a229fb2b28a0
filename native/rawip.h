/*
 * Underlay raw IP sockets for protocols carried directly in IP (GRE, protocol 47):
 * IPv4 and IPv6, one family per socket, bound to the underlay's local address.
 *
 * The kernel builds the outer IP header on send (no IP_HDRINCL / no IPv6 raw header):
 * the payload handed to sendmmsg is the GRE header and the frame, and the kernel fills
 * in addresses, length, identification, TTL and the IPv4 header checksum, and sets DF
 * (IP_PMTUDISC_DO / IPV6_PMTUDISC_DO: a packet too big is EMSGSIZE, never fragmented).
 * A prebuilt header template with IP_HDRINCL would save the kernel little (it still
 * routes and checksums every packet) and cost us the IP ID and path MTU handling; if a
 * measurement ever shows otherwise it can slot in behind rawip_open.
 *
 * On receive the two families differ, as raw(7) and raw(7)/ipv6 say: an IPv4 raw socket
 * delivers the IP header in front of the payload (rawip_payload skips it, after checking
 * it), an IPv6 raw socket delivers the payload only. The outer source address comes from
 * msg_name. The kernel reassembles fragments before raw delivery.
 *
 * A raw socket bound to an address sees only packets to that address, but it sees every
 * one of them with its protocol: two vtepd instances on one address would both receive
 * each GRE packet (as two OVS userspace datapaths would).
 */
#ifndef VTEPD_RAWIP_H
#define VTEPD_RAWIP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Socket buffers, as for the UDP underlay. */
#define RAWIP_SOCKBUF_BYTES (4 << 20)

/*
 * Open a raw socket for IP protocol `proto` bound to `local`'s address (its port is
 * ignored): non-blocking, close-on-exec, large buffers, DF on send. Returns 0 or errno with *step naming what failed ("socket", "bind", ...).
 */
int rawip_open(const struct sockaddr_storage *local, socklen_t len, int proto, int *fd, const char **step);

/*
 * The protocol payload of a packet read from a raw socket of `family`: for AF_INET, check
 * the IPv4 header (version 4, IHL >= 5, fits, total length fits) and skip it; for AF_INET6
 * the packet is the payload. 0 with *off, *plen; EBADMSG for a malformed IPv4 header.
 */
int rawip_payload(int family, const uint8_t *pkt, size_t len, size_t *off, size_t *plen);

#ifdef __cplusplus
}
#endif

#endif
