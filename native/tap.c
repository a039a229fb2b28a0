#include "tap.h"

#include "ifreq.h"
#include "netns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(struct tap_result *r, const char *step, int err) {
  snprintf(r->step, sizeof r->step, "%s", step);
  return err;
}

/*
 * IFLA_GSO_MAX_SEGS over rtnetlink (settable on a live device since Linux 6.x; older
 * kernels refuse, and super-frames then simply split into more UDP_SEGMENT trains).
 */
static int link_set_gso_max_segs(int ifindex, uint32_t segs) {
  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    char attrs[RTA_SPACE(sizeof(uint32_t))];
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.ifi);
  req.nh.nlmsg_type = RTM_NEWLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = ifindex;
  struct rtattr *rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
  rta->rta_type = IFLA_GSO_MAX_SEGS;
  rta->rta_len = RTA_LENGTH(sizeof segs);
  memcpy(RTA_DATA(rta), &segs, sizeof segs);
  req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);

  int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl < 0) return errno;
  int err = 0;
  if (send(nl, &req, req.nh.nlmsg_len, 0) < 0) {
    err = errno;
  } else {
    union {
      struct nlmsghdr nh;
      char buf[512];
    } ack;
    ssize_t n = recv(nl, &ack, sizeof ack, 0);
    if (n < 0) err = errno;
    else if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && ack.nh.nlmsg_type == NLMSG_ERROR)
      err = -((struct nlmsgerr *)NLMSG_DATA(&ack.nh))->error;
  }
  close(nl);
  return err;
}

/* Everything after the namespace is chosen; runs on whichever thread is in it. */
static int tap_setup(const struct tap_config *c, struct tap_result *r) {
  struct ifreq ifr;
  int err = 0, sk = -1;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return fail(r, "open /dev/net/tun", errno);

  const unsigned nq = c->queues > 1 ? c->queues : 1;
  if (nq > TAP_MAX_QUEUES) {
    close(fd);
    return fail(r, "queues (1..8)", EINVAL);
  }
  ifr_init(&ifr, c->name);
  const short flags = IFF_TAP | IFF_NO_PI | (c->offloads ? IFF_VNET_HDR : 0) | (nq > 1 ? IFF_MULTI_QUEUE : 0);
  ifr.ifr_flags = flags;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    err = fail(r, "TUNSETIFF", errno);
    goto out;
  }
  r->queue_fds[0] = fd;
  r->nqueues = 1;
  /* The other queues: the same name and flags attach a queue to the device just made. */
  for (unsigned q = 1; q < nq; q++) {
    int qfd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (qfd < 0) {
      err = fail(r, "open /dev/net/tun (queue)", errno);
      goto out;
    }
    struct ifreq qi;
    memcpy(&qi, &ifr, sizeof qi); /* ifr_name: the device's */
    qi.ifr_flags = flags;
    if (ioctl(qfd, TUNSETIFF, &qi) < 0) {
      err = fail(r, "TUNSETIFF (queue)", errno);
      close(qfd);
      goto out;
    }
    r->queue_fds[r->nqueues++] = qfd;
  }
  if (c->offloads) {
    int hdr = 10; /* struct virtio_net_hdr, no num_buffers */
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
      err = fail(r, "TUNSETVNETHDRSZ", errno);
      goto out;
    }
    r->vnet_hdr = true;
    /* Most first; an older kernel refuses the bits it does not know with EINVAL. */
    static const unsigned tries[] = {
        TAP_F_CSUM | TAP_F_TSO4 | TAP_F_TSO6 | TAP_F_TSO_ECN | TAP_F_USO4 | TAP_F_USO6,
        TAP_F_CSUM | TAP_F_TSO4 | TAP_F_TSO6 | TAP_F_TSO_ECN,
        TAP_F_CSUM | TAP_F_TSO4 | TAP_F_TSO6,
        TAP_F_CSUM,
    };
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
      if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)tries[i]) == 0) {
        r->offloads = tries[i];
        break;
      }
      if (errno != EINVAL) {
        err = fail(r, "TUNSETOFFLOAD", errno);
        goto out;
      }
    }
  }
  memcpy(r->name, ifr.ifr_name, IFNAMSIZ);
  r->name[IFNAMSIZ - 1] = 0;

  /* Interface ioctls go through any socket of the namespace the TAP lives in. */
  sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sk < 0) {
    err = fail(r, "socket", errno);
    goto out;
  }
  ifr_init(&ifr, r->name);
  if (ioctl(sk, SIOCGIFINDEX, &ifr) < 0) {
    err = fail(r, "SIOCGIFINDEX", errno);
    goto out;
  }
  r->ifindex = ifr.ifr_ifindex;

  ifr_init(&ifr, r->name);
  ifr.ifr_mtu = c->mtu;
  if (ioctl(sk, SIOCSIFMTU, &ifr) < 0) {
    err = fail(r, "SIOCSIFMTU", errno);
    goto out;
  }

  /* A TCP super-frame the kernel hands over should become ONE train of UDP_SEGMENT
   * datagrams (at most 64 KB of UDP payload: each segment is VXLAN 8 + Ethernet 14 + up to
   * the MTU), not a full train and a short one. */
  if ((r->offloads & (TAP_F_TSO4 | TAP_F_TSO6)) && c->mtu > 0) {
    uint32_t segs = 65507u / (uint32_t)(8 + 14 + c->mtu);
    if (segs >= 2 && segs < 64) r->gso_max_segs = link_set_gso_max_segs(r->ifindex, segs) == 0 ? segs : 0;
  }

  if (c->has_mac) {
    ifr_init(&ifr, r->name);
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, c->mac, 6);
    if (ioctl(sk, SIOCSIFHWADDR, &ifr) < 0) {
      err = fail(r, "SIOCSIFHWADDR", errno);
      goto out;
    }
  }

  if (c->has_ipv4) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    ifr_init(&ifr, r->name);
    sin->sin_family = AF_INET;
    sin->sin_addr = c->ipv4;
    if (ioctl(sk, SIOCSIFADDR, &ifr) < 0) {
      err = fail(r, "SIOCSIFADDR", errno);
      goto out;
    }
    ifr_init(&ifr, r->name);
    sin = (struct sockaddr_in *)&ifr.ifr_netmask;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = c->prefix_len == 0 ? 0 : htonl(~0u << (32 - c->prefix_len));
    if (ioctl(sk, SIOCSIFNETMASK, &ifr) < 0) {
      err = fail(r, "SIOCSIFNETMASK", errno);
      goto out;
    }
  }

  if (c->up) {
    ifr_init(&ifr, r->name);
    if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) {
      err = fail(r, "SIOCGIFFLAGS", errno);
      goto out;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) {
      err = fail(r, "SIOCSIFFLAGS", errno);
      goto out;
    }
  }

  ifr_init(&ifr, r->name);
  if (ioctl(sk, SIOCGIFHWADDR, &ifr) < 0) {
    err = fail(r, "SIOCGIFHWADDR", errno);
    goto out;
  }
  memcpy(r->mac, ifr.ifr_hwaddr.sa_data, 6);

out:
  if (sk >= 0) close(sk);
  if (err) {
    for (unsigned q = 1; q < r->nqueues; q++) close(r->queue_fds[q]);
    close(fd);
    r->fd = -1;
    r->nqueues = 0;
  } else {
    r->fd = fd;
  }
  return err;
}

struct tap_job {
  const struct tap_config *cfg;
  struct tap_result *res;
};

static int tap_setup_job(void *arg) {
  struct tap_job *j = arg;
  return tap_setup(j->cfg, j->res);
}

int tap_open(const struct tap_config *cfg, struct tap_result *res) {
  memset(res, 0, sizeof *res);
  res->fd = -1;
  struct tap_job job = {cfg, res};
  return netns_call(cfg->netns, tap_setup_job, &job, res->step, sizeof res->step);
}
