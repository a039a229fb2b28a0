/*
 * Attached ports: an interface that already exists (a NIC, a bond, a veth toward a switch
 * or a bare-metal host), read and written through an AF_PACKET SOCK_RAW socket bound to
 * it. The socket is the port's fd; the fast path treats it like a TAP with IFF_VNET_HDR:
 * frames come and go behind a 10-byte virtio_net_hdr (PACKET_VNET_HDR), super-frames
 * (GSO) included. Which tenant the frames belong to is not decided here (dpPortSet).
 */
#ifndef VTEPD_ATTACH_H
#define VTEPD_ATTACH_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct attach_config {
  const char *name;  /* the interface, 1..15 bytes */
  const char *netns; /* name under /run/netns, or NULL for the caller's namespace */
  bool up;           /* bring the interface up if it is down */
  bool ipv6_off;     /* turn IPv6 off on it (disable_ipv6): the host takes no part in the segment */
};

struct attach_result {
  int fd; /* the packet socket: non-blocking, close-on-exec */
  int ifindex;
  int mtu;
  uint8_t mac[6];
  bool was_down; /* the interface was down and was brought up (cfg.up) */
  bool ipv6_was_on; /* IPv6 was on and was turned off (cfg.ipv6_off) */
  char step[300]; /* on failure: what failed, e.g. "SIOCGIFINDEX" or "setns /run/netns/x" */
};

/*
 * Open a packet socket on interface cfg->name (inside cfg->netns when given):
 * PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING (its own transmits do not come back), bound to
 * the interface for every protocol, and PACKET_MR_PROMISC (the kernel drops it when the
 * socket closes). With cfg->ipv6_off, net.ipv6.conf.<name>.disable_ipv6 is set in its
 * namespace (nothing when the kernel has no IPv6). An interface that does not exist is ENODEV at step "SIOCGIFINDEX"; one
 * that is not Ethernet is EPROTOTYPE at step "ARPHRD". Returns 0 or errno (nothing open).
 */
int attach_open(const struct attach_config *cfg, struct attach_result *res);

/* The ifindex a packet socket is bound to (getsockname), -1 once its interface is deleted; or -errno. */
int attach_bound_ifindex(int fd);

#ifdef __cplusplus
}
#endif

#endif
