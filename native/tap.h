/*
 * TAP ports: /dev/net/tun with IFF_TAP|IFF_NO_PI, configured with ioctls, optionally
 * inside a named network namespace. The fd is the port; closing it deletes the device
 * (the TAP is not persistent).
 */
#ifndef VTEPD_TAP_H
#define VTEPD_TAP_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tap_config {
  const char *name;  /* 1..15 bytes */
  const char *netns; /* name under /run/netns, or NULL for the caller's namespace */
  int mtu;
  bool has_mac;
  uint8_t mac[6];
  bool has_ipv4;
  struct in_addr ipv4;
  int prefix_len; /* 0..32 */
  bool up;
  /*
   * IFF_VNET_HDR and TUNSETOFFLOAD: the kernel may hand over TCP super-frames (TSO4/6,
   * with ECN), UDP super-frames (USO4/6, where the kernel knows them) and partial
   * checksums, each frame behind a virtio_net_hdr. What the kernel refuses is left out.
   */
  bool offloads;
  /* 1 (0 means 1): a plain TAP. 2..TAP_MAX_QUEUES: IFF_MULTI_QUEUE with one fd per queue. */
  unsigned queues;
};

#define TAP_MAX_QUEUES 8

/* TUNSETOFFLOAD bits (<linux/if_tun.h>; USO since Linux 6.2). */
#define TAP_F_CSUM 0x01
#define TAP_F_TSO4 0x02
#define TAP_F_TSO6 0x04
#define TAP_F_TSO_ECN 0x08
#define TAP_F_USO4 0x20
#define TAP_F_USO6 0x40

struct tap_result {
  int fd;                          /* queue 0 */
  int queue_fds[TAP_MAX_QUEUES];   /* queues 1..nqueues-1 in [1..]; [0] = fd */
  unsigned nqueues;
  int ifindex;
  uint8_t mac[6];
  char name[IFNAMSIZ];
  bool vnet_hdr;     /* frames carry a virtio_net_hdr */
  unsigned offloads; /* TAP_F_* the kernel accepted */
  unsigned gso_max_segs; /* segments per super-frame the TAP was limited to; 0: not limited */
  char step[300]; /* on failure: what failed, e.g. "SIOCSIFMTU" or "setns /run/netns/x" */
};

/*
 * Create and configure the TAP. With cfg->netns, all of it runs in a short-lived thread
 * that setns()es into the namespace first, so the calling (Node) thread never changes
 * namespace. Returns 0 or errno (fd closed, res->step set).
 */
int tap_open(const struct tap_config *cfg, struct tap_result *res);

#ifdef __cplusplus
}
#endif

#endif
