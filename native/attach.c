#include "attach.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ifreq.h"
#include "netns.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23 /* Linux 4.20 */
#endif

static int fail(struct attach_result *r, const char *step, int err) {
  snprintf(r->step, sizeof r->step, "%s", step);
  return err;
}

/* What the interface is: ifindex, Ethernet MAC, MTU; brought up if asked. Any socket of the namespace will do. */
static int link_query(int sk, const struct attach_config *c, struct attach_result *r) {
  struct ifreq ifr;
  ifr_init(&ifr, c->name);
  if (ioctl(sk, SIOCGIFINDEX, &ifr) < 0) return fail(r, "SIOCGIFINDEX", errno);
  r->ifindex = ifr.ifr_ifindex;
  ifr_init(&ifr, c->name);
  if (ioctl(sk, SIOCGIFHWADDR, &ifr) < 0) return fail(r, "SIOCGIFHWADDR", errno);
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) return fail(r, "ARPHRD", EPROTOTYPE);
  memcpy(r->mac, ifr.ifr_hwaddr.sa_data, 6);
  ifr_init(&ifr, c->name);
  if (ioctl(sk, SIOCGIFMTU, &ifr) < 0) return fail(r, "SIOCGIFMTU", errno);
  r->mtu = ifr.ifr_mtu;
  ifr_init(&ifr, c->name);
  if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) return fail(r, "SIOCGIFFLAGS", errno);
  if (!(ifr.ifr_flags & IFF_UP) && c->up) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) return fail(r, "SIOCSIFFLAGS", errno);
    r->was_down = true;
  }
  return 0;
}

/* IPv6 off on the interface: no link-local address, no ND, MLD or router solicitation from
 * this host into the segment. /proc/sys/net is the namespace's that the thread is in. */
static int ipv6_off(const struct attach_config *c, struct attach_result *r) {
  char path[96];
  snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", c->name);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : fail(r, "open disable_ipv6", errno); /* no IPv6 in this kernel */
  char was = '1';
  int err = 0;
  if (read(fd, &was, 1) != 1) err = fail(r, "read disable_ipv6", errno);
  else if (was == '0' && pwrite(fd, "1\n", 2, 0) != 2) err = fail(r, "write disable_ipv6", errno);
  else r->ipv6_was_on = was == '0';
  close(fd);
  return err;
}

static int sockopt(int sk, int level, int name, const void *v, socklen_t len, struct attach_result *r, const char *step) {
  return setsockopt(sk, level, name, v, len) < 0 ? fail(r, step, errno) : 0;
}

/* The socket: options before bind, so no frame is ever read without its virtio_net_hdr, nor
 * without the auxdata that carries the 802.1Q tag the kernel took off the frame. */
static int packet_setup(int sk, struct attach_result *r) {
  const int one = 1;
  int err = sockopt(sk, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one, r, "PACKET_VNET_HDR");
  if (!err) err = sockopt(sk, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one, r, "PACKET_AUXDATA");
  if (!err) err = sockopt(sk, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one, r, "PACKET_IGNORE_OUTGOING");
  if (err) return err;
  /* Bigger socket buffers where allowed (CAP_NET_ADMIN); the defaults if not. */
  const int buf = 4 << 20;
  if (setsockopt(sk, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0) setsockopt(sk, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  if (setsockopt(sk, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0) setsockopt(sk, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = r->ifindex;
  if (bind(sk, (struct sockaddr *)&sll, sizeof sll) < 0) return fail(r, "bind", errno);
  struct packet_mreq mr;
  memset(&mr, 0, sizeof mr);
  mr.mr_ifindex = r->ifindex;
  mr.mr_type = PACKET_MR_PROMISC;
  return sockopt(sk, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr, r, "PACKET_MR_PROMISC");
}

static int attach_setup(void *arg) {
  const struct attach_config *c = ((void **)arg)[0];
  struct attach_result *r = ((void **)arg)[1];
  /* Protocol 0: nothing is received before the bind to the interface. */
  int sk = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (sk < 0) return fail(r, "socket(AF_PACKET)", errno);
  int err = link_query(sk, c, r);
  if (!err && c->ipv6_off) err = ipv6_off(c, r);
  if (!err) err = packet_setup(sk, r);
  if (err) {
    close(sk);
    return err;
  }
  r->fd = sk;
  return 0;
}

int attach_open(const struct attach_config *cfg, struct attach_result *res) {
  memset(res, 0, sizeof *res);
  res->fd = -1;
  void *job[2] = {(void *)cfg, res};
  return netns_call(cfg->netns, attach_setup, job, res->step, sizeof res->step);
}

int attach_bound_ifindex(int fd) {
  struct sockaddr_ll sll;
  socklen_t len = sizeof sll;
  memset(&sll, 0, sizeof sll);
  if (getsockname(fd, (struct sockaddr *)&sll, &len) < 0) return -errno;
  if (sll.sll_family != AF_PACKET) return -ENOTSOCK;
  return sll.sll_ifindex;
}
