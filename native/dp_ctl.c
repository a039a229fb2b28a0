/*
 * Control calls, all from the JS thread: tenants, ports, VTEPs, FDB entries, liveness
 * sends and flooding (dp_transmit). Each validates, then changes the tables under the
 * write lock; errors go through dp_fail (dp_last_error says why).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>
#include <unistd.h>

#include "dp_private.h"

int dp_fail(struct dp *dp, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dp->err, sizeof dp->err, fmt, ap);
  va_end(ap);
  return err;
}

const char *dp_last_error(const struct dp *dp) { return dp->err; }

/* ---- id maps: VNI -> tenantId, outer address -> vtepId ------------------------------ */

typedef uint32_t (*idmap_home_fn)(const struct dp *dp, uint16_t id);

static uint32_t tenant_home(const struct dp *dp, uint16_t id) { return vni_hash(dp->tenants[id].vni); }
static uint32_t vtep_home(const struct dp *dp, uint16_t id) { return addr_hash(&dp->vteps[id].addr); }

static void idmap_insert(uint16_t *slots, uint32_t mask, uint32_t home, uint16_t id) {
  uint32_t i = home & mask;
  while (slots[i]) i = (i + 1) & mask;
  slots[i] = id;
}

/* Backward-shift removal, as in fdb.c; home_of recomputes an entry's home from its table. */
static void idmap_remove(const struct dp *dp, uint16_t *slots, uint32_t mask, uint32_t home, uint16_t id,
                         idmap_home_fn home_of) {
  uint32_t hole = home & mask;
  while (slots[hole] != id) {
    if (!slots[hole]) return;
    hole = (hole + 1) & mask;
  }
  for (uint32_t j = (hole + 1) & mask; slots[j]; j = (j + 1) & mask) {
    uint32_t h = home_of(dp, slots[j]) & mask;
    bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
    if (stays) continue;
    slots[hole] = slots[j];
    hole = j;
  }
  slots[hole] = 0;
}

/* The raw GRE socket of an address family (AF_*), or -1. */
static inline int gre_fd_of(const struct dp *dp, int af) {
  return af == dp->family ? dp->gre_fd : af == dp->alt.family ? dp->alt.gre_fd : -1;
}

#define CHECK_ID(dp, what, id, max)                                                            \
  do {                                                                                         \
    if ((id) == 0 || (id) >= (max))                                                            \
      return dp_fail(dp, ERANGE, what " %u is out of range 1..%u", (unsigned)(id), (unsigned)((max) - 1)); \
  } while (0)

int dp_tenant_set(struct dp *dp, uint32_t tid, uint32_t vni) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  if (vni > VXLAN_VNI_MAX) return dp_fail(dp, ERANGE, "vni %u is out of range 0..%u", vni, VXLAN_VNI_MAX);
  int err = 0;
  uint64_t *accept = NULL;
  if (!dp->tenants[tid].accept) { /* allocated outside the lock; only this thread sets tenants */
    accept = calloc(DP_MAX_VTEPS / 64, sizeof *accept);
    if (!accept) return dp_fail(dp, ENOMEM, "tenant %u: no memory for its VTEP accept set", tid);
  }
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_tenant *t = &dp->tenants[tid];
  if (!t->accept) { t->accept = accept; accept = NULL; }
  if (tid >= dp->hi_tenant) dp->hi_tenant = tid + 1; /* its accept set is freed by dp_destroy */
  uint32_t other = vni_lookup(dp, vni);
  if (other && other != tid) {
    err = dp_fail(dp, EEXIST, "vni %u is already used by tenant %u", vni, other);
  } else if (!t->in_use || t->vni != vni) {
    if (t->in_use) idmap_remove(dp, dp->vni_map, VNI_MAP_SLOTS - 1, vni_hash(t->vni), (uint16_t)tid, tenant_home);
    else {
      t->encaps = DP_ENCAP_BIT(DP_ENCAP_VXLAN);
      io_reset(dp, IO_TENANT, tid);
    }
    t->vni = vni;
    vxlan_hdr_build(&t->vxlan, vni);
    gre_hdr_build(&t->gre, vni);     /* GRE-TAP: key = VNI */
    nvgre_hdr_build(&t->nvgre, vni); /* NVGRE: VSID = VNI, FlowID per frame */
    idmap_insert(dp->vni_map, VNI_MAP_SLOTS - 1, vni_hash(vni), (uint16_t)tid);
    t->in_use = true;
  }
  pthread_rwlock_unlock(&dp->lock);
  free(accept);
  return err;
}

int dp_tenant_accept(struct dp *dp, uint32_t tid, uint32_t vid, bool accept) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  CHECK_ID(dp, "vtepId", vid, DP_MAX_VTEPS);
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_tenant *t = &dp->tenants[tid];
  if (!t->in_use) err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  else if (!dp->vteps[vid].in_use && accept) err = dp_fail(dp, ENOENT, "VTEP %u does not exist", vid);
  else if (accept) t->accept[vid >> 6] |= 1ull << (vid & 63);
  else t->accept[vid >> 6] &= ~(1ull << (vid & 63));
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_tenant_accept_any(struct dp *dp, uint32_t tid, bool any) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  if (!dp->tenants[tid].in_use) err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  else dp->tenants[tid].accept_any = any;
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_tenant_encaps(struct dp *dp, uint32_t tid, unsigned mask) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  const unsigned all = DP_ENCAP_BIT(DP_ENCAP_VXLAN) | DP_ENCAP_BIT(DP_ENCAP_GRE) | DP_ENCAP_BIT(DP_ENCAP_NVGRE);
  const unsigned gre = DP_ENCAP_BIT(DP_ENCAP_GRE) | DP_ENCAP_BIT(DP_ENCAP_NVGRE);
  if (mask & ~all) return dp_fail(dp, EINVAL, "encapsulation mask 0x%x has unknown bits", mask);
  if ((mask & gre) && dp->gre_fd < 0 && dp->alt.gre_fd < 0)
    return dp_fail(dp, ENOPROTOOPT, "GRE-TAP/NVGRE need the data path's raw GRE socket (dpCreate with gre: true)");
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_tenant *t = &dp->tenants[tid];
  if (!t->in_use) err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  else if ((mask & DP_ENCAP_BIT(DP_ENCAP_NVGRE)) && t->vni < NVGRE_VSID_MIN)
    err = dp_fail(dp, EINVAL, "tenant %u: VNI %u is a reserved NVGRE VSID (0..0xFFF)", tid, t->vni);
  else t->encaps = (uint8_t)mask;
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_tenant_relay(struct dp *dp, uint32_t tid, bool relay) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  if (!dp->tenants[tid].in_use) err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  else dp->tenants[tid].relay = relay;
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_tenant_inner_vlan(struct dp *dp, uint32_t tid, bool allow) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  if (!dp->tenants[tid].in_use) err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  else dp->tenants[tid].inner_vlan = allow;
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_tenant_mss(struct dp *dp, uint32_t tid, uint16_t mss4, uint16_t mss6) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  if (!dp->tenants[tid].in_use) {
    err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  } else {
    dp->tenants[tid].mss4 = mss4;
    dp->tenants[tid].mss6 = mss6;
  }
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_send_control(struct dp *dp, const struct sockaddr_storage *sa, socklen_t salen, const uint8_t *p, size_t n,
                    bool df, bool from_rx) {
  if (dp->stopped) return dp_fail(dp, ESHUTDOWN, "the data path was stopped: no underlay sockets");
  const bool alt = dp->alt.family && sa->ss_family == dp->alt.family;
  if (sa->ss_family != dp->family && !alt)
    return dp_fail(dp, EAFNOSUPPORT, "the underlay is IPv%d", dp->family == AF_INET ? 4 : 6);
  int fd = from_rx ? (alt ? dp->alt.rx_fd : dp->rx_fd) : (alt ? dp->alt.tx_fd[0] : dp->tx_fd[0]);
  const int v4 = sa->ss_family == AF_INET;
  const int lvl = v4 ? IPPROTO_IP : IPPROTO_IPV6, opt = v4 ? IP_MTU_DISCOVER : IPV6_MTU_DISCOVER;
  /* Without DF: switched on this socket for this one send, the fast path held off. */
  if (!df) {
    int dont = v4 ? IP_PMTUDISC_DONT : IPV6_PMTUDISC_DONT;
    pthread_rwlock_wrlock(&dp->lock);
    setsockopt(fd, lvl, opt, &dont, sizeof dont);
  }
  ssize_t r;
  do r = sendto(fd, p, n, MSG_DONTWAIT, (const struct sockaddr *)sa, salen);
  while (r < 0 && errno == EINTR);
  int err = r < 0 ? errno : 0;
  if (!df) {
    int back = from_rx ? (v4 ? IP_PMTUDISC_PROBE : IPV6_PMTUDISC_PROBE) : (v4 ? IP_PMTUDISC_DO : IPV6_PMTUDISC_DO);
    setsockopt(fd, lvl, opt, &back, sizeof back);
    pthread_rwlock_unlock(&dp->lock);
  }
  if (err == EMSGSIZE) return dp_fail(dp, EMSGSIZE, "%zu bytes do not fit the local link (no fragmenting)", n);
  if (err) return dp_fail(dp, err, "sendto: %s", strerror(err));
  count(dp->ctrl, DPC_control_tx);
  return 0;
}

int dp_tenant_del(struct dp *dp, uint32_t tid) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_tenant *t = &dp->tenants[tid];
  if (!t->in_use) {
    pthread_rwlock_unlock(&dp->lock);
    return dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  }
  idmap_remove(dp, dp->vni_map, VNI_MAP_SLOTS - 1, vni_hash(t->vni), (uint16_t)tid, tenant_home);
  fdb_flush_tenant(&dp->fdb, tid);
  /* Its ports stay attached (and drained) but unbound until dpPortSet or dpPortDel. */
  for (uint32_t p = 1; p < dp->hi_port; p++) {
    if (dp->ports[p].in_use && dp->ports[p].tenant == tid) dp->ports[p].tenant = 0;
  }
  uint64_t *accept = t->accept;
  memset(accept, 0, DP_MAX_VTEPS / 8); /* kept for the id's next tenant */
  memset(t, 0, sizeof *t);
  t->accept = accept;
  pthread_rwlock_unlock(&dp->lock);
  return 0;
}

int dp_port_set(struct dp *dp, uint32_t pid, uint32_t tid, int fd, int vnet_hdr) {
  return dp_port_set_queues(dp, pid, tid, &fd, 1, vnet_hdr);
}

/* Leave every epoll set the port's fds are in (ENOENT for one that already left: fine). */
static void port_unpoll(struct dp *dp, const struct dp_port *p) {
  for (unsigned q = 0; q < p->nq; q++) epoll_ctl(dp->q_epfd[q], EPOLL_CTL_DEL, p->qfd[q], NULL);
}

static int port_set(struct dp *dp, uint32_t pid, uint32_t tid, const int *fds, unsigned nfds, int vnet_hdr, bool trunk);

int dp_port_set_queues(struct dp *dp, uint32_t pid, uint32_t tid, const int *fds, unsigned nfds, int vnet_hdr) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  return port_set(dp, pid, tid, fds, nfds, vnet_hdr, false);
}

/*
 * A trunk: a port with an fd (an attached interface's packet socket) and no tenant; its
 * frames go to its VLAN ports (dp_vlan_port_set) by their tags. Set again (a new fd after
 * the interface came back), it keeps its VLAN ports.
 */
int dp_trunk_set(struct dp *dp, uint32_t pid, int fd, int vnet_hdr) {
  if (vnet_hdr < 0) { /* as the fd is: an attached interface's packet socket reads a virtio_net_hdr, a TAP says */
    int domain = 0;
    socklen_t dlen = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 && domain == AF_PACKET) vnet_hdr = 1;
  }
  return port_set(dp, pid, 0, &fd, 1, vnet_hdr, true);
}

/* The same open file: the same fd, or another fd of it (a dup, or a copy sent to the data
 * path's own process, where the numbers differ from the parent's). */
static bool same_file(int a, int b) {
  if (a == b) return true;
  pid_t self = getpid();
  return syscall(SYS_kcmp, self, self, KCMP_FILE, a, b) == 0;
}

static int port_set(struct dp *dp, uint32_t pid, uint32_t tid, const int *fds, unsigned nfds, int vnet_hdr, bool trunk) {
  CHECK_ID(dp, "portId", pid, DP_MAX_PORTS);
  if (nfds == 0 || nfds > dp->nqueues)
    return dp_fail(dp, EINVAL, "%u fds for port %u: the data path runs %u queue(s)", nfds, pid, dp->nqueues);
  int fl[DP_MAX_QUEUES];
  bool packet = false;
  for (unsigned q = 0; q < nfds; q++) {
    const int fd = fds[q];
    if ((fl[q] = fcntl(fd, F_GETFL)) < 0) return dp_fail(dp, errno, "fd %d is not an open descriptor", fd);
    for (unsigned k = 0; k < q; k++)
      if (same_file(fds[k], fd)) return dp_fail(dp, EINVAL, "fd %d is given twice for port %u", fd, pid);
    /* A TAP says whether it was opened with IFF_VNET_HDR; reading it without the header
     * (or with one it does not have) would shift every frame by 10 bytes. */
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (ioctl(fd, TUNGETIFF, &ifr) == 0) {
      bool has = (ifr.ifr_flags & IFF_VNET_HDR) != 0;
      if (vnet_hdr < 0) vnet_hdr = has;
      else if ((vnet_hdr != 0) != has)
        return dp_fail(dp, EINVAL, "fd %d is a TAP %s IFF_VNET_HDR but vnetHdr is %s", fd, has ? "with" : "without",
                       vnet_hdr ? "true" : "false");
    } else if (nfds > 1) {
      return dp_fail(dp, EINVAL, "fd %d is not a TAP: only a multi-queue TAP has an fd per queue", fd);
    } else if (vnet_hdr < 0) {
      vnet_hdr = 0;
    }
    int domain = 0;
    socklen_t dlen = sizeof domain;
    packet = nfds == 1 && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 && domain == AF_PACKET;
  }

  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_port *p = &dp->ports[pid];
  if (!trunk && !dp->tenants[tid].in_use) {
    err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
    goto out;
  }
  if (p->in_use && (p->parent || p->trunk != trunk)) {
    err = dp_fail(dp, EEXIST, "port %u is a %s: delete it first", pid, p->parent ? "VLAN port" : p->trunk ? "trunk" : "port");
    goto out;
  }
  uint16_t *vmap = p->in_use ? p->vmap : NULL;
  if (trunk && !vmap && !(vmap = calloc(DP_VLAN_IDS, sizeof *vmap))) {
    err = dp_fail(dp, ENOMEM, "no memory for the VLAN map of trunk %u", pid);
    goto out;
  }
  for (uint32_t i = 1; i < dp->hi_port; i++) {
    if (i == pid || !dp->ports[i].in_use) continue;
    for (unsigned a = 0; a < dp->ports[i].nq; a++)
      for (unsigned q = 0; q < nfds; q++)
        if (same_file(dp->ports[i].qfd[a], fds[q])) {
          err = dp_fail(dp, EEXIST, "fd %d is already port %u", fds[q], i);
          goto out;
        }
  }
  /* The encap threads read until EAGAIN under the read lock: a blocking fd would hang one. */
  for (unsigned q = 0; q < nfds; q++) {
    if (!(fl[q] & O_NONBLOCK) && fcntl(fds[q], F_SETFL, fl[q] | O_NONBLOCK) < 0) {
      int e = errno;
      err = dp_fail(dp, e, "cannot make fd %d non-blocking: %s", fds[q], strerror(e));
      goto out;
    }
  }
  /* A queue's fd that the port already has there is kept: MOD re-arms it (it may have left
   * the set after a read error); any other is added. */
  bool kept[DP_MAX_QUEUES] = {false};
  for (unsigned q = 0; q < nfds; q++) {
    kept[q] = p->in_use && q < p->nq && p->qfd[q] == fds[q];
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = pid};
    if (epoll_ctl(dp->q_epfd[q], EPOLL_CTL_ADD, fds[q], &ev) < 0 &&
        !(kept[q] && errno == EEXIST && epoll_ctl(dp->q_epfd[q], EPOLL_CTL_MOD, fds[q], &ev) == 0)) {
      int e = errno;
      for (unsigned k = 0; k < q; k++)
        if (!kept[k]) epoll_ctl(dp->q_epfd[k], EPOLL_CTL_DEL, fds[k], NULL);
      err = dp_fail(dp, e, "fd %d cannot be polled: %s", fds[q], strerror(e));
      goto out;
    }
  }
  /* The old fds the port no longer has at their queue leave their sets. */
  for (unsigned a = 0; p->in_use && a < p->nq; a++)
    if (!(a < nfds && kept[a])) epoll_ctl(dp->q_epfd[a], EPOLL_CTL_DEL, p->qfd[a], NULL);
  if (!p->in_use) io_reset(dp, IO_PORT, pid);
  else if (p->tenant != tid) fdb_del_pointing_at(&dp->fdb, FDB_KIND_PORT, pid); /* moved: old tenant's MACs go */
  p->fd = fds[0];
  p->nq = (uint8_t)nfds;
  for (unsigned q = 0; q < DP_MAX_QUEUES; q++) p->qfd[q] = q < nfds ? fds[q] : -1;
  p->tenant = tid;
  p->vnet = vnet_hdr != 0;
  p->packet = packet;
  p->trunk = trunk;
  p->vmap = trunk ? vmap : NULL;
  p->in_use = true;
  if (pid >= dp->hi_port) dp->hi_port = pid + 1;
out:
  if (err && trunk && vmap && vmap != p->vmap) free(vmap);
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

/*
 * A VLAN port: tenant `tid`'s share of trunk `trunk`, for frames tagged `vlan` (1..4094), or
 * the untagged ones (vlan 0, the native tenant). Frames toward it go out on the trunk with
 * that tag. Set again, it may move to another tenant (its MACs go) but not to another VLAN.
 */
int dp_vlan_port_set(struct dp *dp, uint32_t pid, uint32_t tid, uint32_t trunk, uint32_t vlan) {
  CHECK_ID(dp, "portId", pid, DP_MAX_PORTS);
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  CHECK_ID(dp, "trunk", trunk, DP_MAX_PORTS);
  if (vlan > 4094) return dp_fail(dp, EINVAL, "VLAN ID %u: must be 1..4094 (0: untagged)", vlan);
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_port *p = &dp->ports[pid], *t = &dp->ports[trunk];
  uint16_t *slot = vlan ? (t->vmap ? &t->vmap[vlan] : NULL) : &t->native_pid;
  if (!dp->tenants[tid].in_use) err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  else if (!t->in_use || !t->trunk) err = dp_fail(dp, ENOENT, "port %u is not a trunk", trunk);
  else if (*slot && *slot != pid) err = dp_fail(dp, EEXIST, "VLAN %u of trunk %u is port %u", vlan, trunk, *slot);
  else if (p->in_use && !(p->parent == trunk && p->vlan == vlan))
    err = dp_fail(dp, EEXIST, "port %u exists (not VLAN %u of trunk %u): delete it first", pid, vlan, trunk);
  if (!err) {
    if (p->in_use && p->tenant != tid) fdb_del_pointing_at(&dp->fdb, FDB_KIND_PORT, pid);
    if (!p->in_use) {
      io_reset(dp, IO_PORT, pid);
      memset(p, 0, sizeof *p);
    }
    p->fd = -1;
    p->tenant = tid;
    p->parent = (uint16_t)trunk;
    p->vlan = (uint16_t)vlan;
    p->vnet = t->vnet;
    p->packet = t->packet;
    p->in_use = true;
    if (pid >= dp->hi_port) dp->hi_port = pid + 1;
    *slot = (uint16_t)pid;
  }
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_port_del(struct dp *dp, uint32_t pid) {
  CHECK_ID(dp, "portId", pid, DP_MAX_PORTS);
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_port *p = &dp->ports[pid];
  if (!p->in_use) {
    pthread_rwlock_unlock(&dp->lock);
    return dp_fail(dp, ENOENT, "port %u does not exist", pid);
  }
  for (uint32_t i = 1; p->trunk && i < dp->hi_port; i++) {
    if (dp->ports[i].in_use && dp->ports[i].parent == pid) {
      pthread_rwlock_unlock(&dp->lock);
      return dp_fail(dp, EBUSY, "trunk %u still has VLAN port %u: delete its VLAN ports first", pid, i);
    }
  }
  if (p->parent) {
    struct dp_port *t = &dp->ports[p->parent];
    if (p->vlan && t->vmap && t->vmap[p->vlan] == pid) t->vmap[p->vlan] = 0;
    if (!p->vlan && t->native_pid == pid) t->native_pid = 0;
  }
  port_unpoll(dp, p);
  fdb_del_pointing_at(&dp->fdb, FDB_KIND_PORT, pid);
  free(p->vmap);
  memset(p, 0, sizeof *p);
  pthread_rwlock_unlock(&dp->lock);
  return 0;
}

int dp_vtep_set(struct dp *dp, uint32_t vid, const struct sockaddr_storage *sa, socklen_t len) {
  return dp_vtep_set_ex(dp, vid, sa, len, NULL);
}

int dp_vtep_set_ex(struct dp *dp, uint32_t vid, const struct sockaddr_storage *sa, socklen_t len,
                   const struct dp_vtep_opts *opts) {
  CHECK_ID(dp, "vtepId", vid, DP_MAX_VTEPS);
  static const struct dp_vtep_opts none;
  if (!opts) opts = &none;
  struct dp_addr addr;
  uint16_t port;
  char text[INET6_ADDRSTRLEN] = "?";
  if (!addr_from_sockaddr(sa, &addr, &port)) return dp_fail(dp, EAFNOSUPPORT, "address family not supported");
  const uint8_t encap = opts->encap ? opts->encap : DP_ENCAP_VXLAN;
  if (encap > DP_ENCAP_NVGRE) return dp_fail(dp, EINVAL, "encap %u is none of VXLAN (1), GRE-TAP (2), NVGRE (3)", encap);
  if (encap != DP_ENCAP_VXLAN) {
    if (gre_fd_of(dp, sa->ss_family) < 0)
      return dp_fail(dp, ENOPROTOOPT, "GRE-TAP/NVGRE need the data path's raw GRE socket (dpCreate with gre: true)");
    if (opts->match_port || opts->fixed_src)
      return dp_fail(dp, EINVAL, "matchPort and fixedSourcePort are UDP options: not for a GRE-TAP/NVGRE VTEP");
    addr.zero[0] = (uint8_t)(encap << DP_ADDR_ENCAP_SHIFT);
    port = 0;
  }
  if (opts->match_port) { /* the key carries the port the VTEP sends from (and is sent to) */
    uint16_t p = port ? port : dp->port;
    addr.zero[0] = 1;
    addr.zero[1] = (uint8_t)(p >> 8);
    addr.zero[2] = (uint8_t)p;
  }
  inet_ntop(sa->ss_family, addr.bytes, text, sizeof text);
  if (sa->ss_family != dp->family && sa->ss_family != dp->alt.family)
    return dp_fail(dp, EAFNOSUPPORT, "address %s is IPv%d but the underlay is IPv%d", text, addr.family,
                   dp->family == AF_INET ? 4 : 6);
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_vtep *v = &dp->vteps[vid];
  uint32_t other = vtep_lookup(dp, &addr);
  if (other && other != vid) {
    err = dp_fail(dp, EEXIST, "address %s is already VTEP %u", text, other);
    goto out;
  }
  if (!v->in_use) io_reset(dp, IO_VTEP, vid);
  if (v->in_use && other != vid)
    idmap_remove(dp, dp->addr_map, ADDR_MAP_SLOTS - 1, addr_hash(&v->addr), (uint16_t)vid, vtep_home);
  v->encap = encap;
  if (v->in_use && v->match_port) dp->n_match_port--;
  if (opts->match_port) dp->n_match_port++;
  v->addr = addr;
  v->sa = *sa;
  v->salen = len;
  v->mtu = opts->mtu;
  v->fixed_src = opts->fixed_src;
  v->match_port = opts->match_port;
  if (encap != DP_ENCAP_VXLAN) { /* raw IPv6 sockets refuse a sin6_port other than 0 or the protocol */
    if (sa->ss_family == AF_INET) ((struct sockaddr_in *)&v->sa)->sin_port = 0;
    else ((struct sockaddr_in6 *)&v->sa)->sin6_port = 0;
  } else if (port == 0) { /* the data path's own port, as in Linux's "dstport" default */
    if (sa->ss_family == AF_INET) ((struct sockaddr_in *)&v->sa)->sin_port = htons(dp->port);
    else ((struct sockaddr_in6 *)&v->sa)->sin6_port = htons(dp->port);
  }
  if (other != vid) idmap_insert(dp->addr_map, ADDR_MAP_SLOTS - 1, addr_hash(&addr), (uint16_t)vid);
  v->in_use = true;
  if (vid >= dp->hi_vtep) dp->hi_vtep = vid + 1;
out:
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_vtep_del(struct dp *dp, uint32_t vid) {
  CHECK_ID(dp, "vtepId", vid, DP_MAX_VTEPS);
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_vtep *v = &dp->vteps[vid];
  if (!v->in_use) {
    pthread_rwlock_unlock(&dp->lock);
    return dp_fail(dp, ENOENT, "VTEP %u does not exist", vid);
  }
  idmap_remove(dp, dp->addr_map, ADDR_MAP_SLOTS - 1, addr_hash(&v->addr), (uint16_t)vid, vtep_home);
  if (v->match_port) dp->n_match_port--;
  fdb_del_pointing_at(&dp->fdb, FDB_KIND_VTEP, vid);
  sec_vtep_forget(dp, vid); /* its send key and the receive keys naming it */
  /* The id may be given to another VTEP: no tenant may keep accepting it. */
  for (uint32_t t = 1; t < dp->hi_tenant; t++)
    if (dp->tenants[t].accept) dp->tenants[t].accept[vid >> 6] &= ~(1ull << (vid & 63));
  memset(v, 0, sizeof *v);
  pthread_rwlock_unlock(&dp->lock);
  return 0;
}

int dp_fdb_set(struct dp *dp, uint32_t tid, const uint8_t mac[6], uint8_t kind, uint32_t id) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  if (kind == FDB_KIND_PORT) CHECK_ID(dp, "portId", id, DP_MAX_PORTS);
  else if (kind == FDB_KIND_VTEP) CHECK_ID(dp, "vtepId", id, DP_MAX_VTEPS);
  else return dp_fail(dp, EINVAL, "kind %u is neither FDB_PORT (1) nor FDB_VTEP (2)", kind);
  if (eth_is_multicast(mac) || eth_is_zero(mac))
    return dp_fail(dp, EINVAL, "mac is multicast, broadcast or zero: only unicast MACs are cached");
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  if (!dp->tenants[tid].in_use) {
    err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  } else if (kind == FDB_KIND_PORT && !dp->ports[id].in_use) {
    err = dp_fail(dp, ENOENT, "port %u does not exist", id);
  } else if (kind == FDB_KIND_PORT && dp->ports[id].tenant != tid) {
    err = dp_fail(dp, EINVAL, "port %u is not a port of tenant %u", id, tid);
  } else if (kind == FDB_KIND_VTEP && !dp->vteps[id].in_use) {
    err = dp_fail(dp, ENOENT, "VTEP %u does not exist", id);
  } else if (fdb_set(&dp->fdb, fdb_key(tid, mac), kind, id, (uint32_t)dp_now_ms()) != 0) {
    err = dp_fail(dp, ENOSPC, "the FDB cache is full (%u entries)", (unsigned)DP_FDB_CAPACITY);
  }
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_fdb_del(struct dp *dp, uint32_t tid, const uint8_t mac[6]) {
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  pthread_rwlock_wrlock(&dp->lock);
  fdb_del(&dp->fdb, fdb_key(tid, mac));
  pthread_rwlock_unlock(&dp->lock);
  return 0;
}

int dp_fdb_idle(struct dp *dp, uint8_t **out, size_t *len) {
  pthread_rwlock_rdlock(&dp->lock);
  uint32_t n = dp->fdb.count;
  uint8_t *buf = malloc(n ? (size_t)n * FDB_IDLE_RECORD : 1);
  if (!buf) {
    pthread_rwlock_unlock(&dp->lock);
    return dp_fail(dp, ENOMEM, "out of memory for %u records", n);
  }
  n = fdb_idle_dump(&dp->fdb, (uint32_t)dp_now_ms(), buf, n);
  pthread_rwlock_unlock(&dp->lock);
  *out = buf;
  *len = (size_t)n * FDB_IDLE_RECORD;
  return 0;
}

int dp_transmit(struct dp *dp, uint32_t tid, const uint8_t *frame, size_t len, const uint32_t *ports,
                size_t nports, const uint32_t *vteps, size_t nvteps, uint32_t *sent) {
  struct dp_worker *w = dp->ctrl;
  *sent = 0;
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  if (len < PKT_ETH_HLEN) return dp_fail(dp, EINVAL, "frame of %zu bytes is shorter than an Ethernet header", len);
  if (len > DP_MAX_FRAME) return dp_fail(dp, EMSGSIZE, "frame of %zu bytes exceeds maxFrame %u", len, DP_MAX_FRAME);
  if (nvteps && dp->stopped) return dp_fail(dp, ESHUTDOWN, "the data path was stopped: no underlay sockets");

  pthread_rwlock_rdlock(&dp->lock);
  const struct dp_tenant *t = &dp->tenants[tid];
  if (!t->in_use) {
    pthread_rwlock_unlock(&dp->lock);
    return dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  }
  count(w, DPC_transmit_calls);
  uint32_t n_ok = 0;
  for (size_t i = 0; i < nports; i++) {
    if (ports[i] == 0 || ports[i] >= DP_MAX_PORTS) drop(w, DPC_port_no_tenant, NULL);
    else if (port_deliver(w, tid, ports[i], frame, len, NULL)) n_ok++;
  }
  if (nvteps) {
    /* One frame, one header per encapsulation, many destinations: sendmmsg batches per
     * socket. Pass 0: VXLAN from the pool socket the flow hashes to (one flow); pass 1:
     * VXLAN VTEPs with a fixed source port, from the receive socket; pass 2: GRE-TAP and
     * NVGRE VTEPs, from the raw GRE socket; passes 3..5 the same in the other family. */
    uint8_t *f = worker_buf(w, 0);
    memcpy(f, frame, len);
    if (t->mss4 | t->mss6) mss_clamp(w, t, f, len, false);
    const uint32_t flow = flow_hash(f, len);
    uint8_t hdr[4][DP_TUNNEL_HLEN];
    struct iovec iov[4][2];
    for (uint8_t e = DP_ENCAP_VXLAN; e <= DP_ENCAP_NVGRE; e++) {
      tunnel_push(t, e, hdr[e] + DP_TUNNEL_HLEN, flow);
      iov[e][0] = (struct iovec){hdr[e], DP_TUNNEL_HLEN};
      iov[e][1] = (struct iovec){f, len};
    }
    for (int pass = 0; pass < 6; pass++) { /* passes 3..5: the same for the other family (dual stack) */
      const bool alt = pass >= 3;
      if (alt && !dp->alt.family) break;
      const int fam = alt ? dp->alt.family : dp->family;
      int fd = pass % 3 == 0 ? (alt ? dp->alt.tx_fd[pkt_hash_range(flow, dp->alt.ntx)] : dp->tx_fd[pkt_hash_range(flow, dp->ntx)])
               : pass % 3 == 1 ? (alt ? dp->alt.rx_fd : dp->rx_fd) : (alt ? dp->alt.gre_fd : dp->gre_fd);
      for (size_t i = 0; i < nvteps;) {
        unsigned n = 0;
        for (; i < nvteps && n < DP_TX_MSGS; i++) {
          uint32_t vid = vteps[i];
          if (vid == 0 || vid >= DP_MAX_VTEPS || !dp->vteps[vid].in_use) {
            if (pass == 2) drop(w, DPC_vtep_gone, NULL);
            continue;
          }
          const struct dp_vtep *v = &dp->vteps[vid];
          int want = v->encap != DP_ENCAP_VXLAN ? 2 : v->fixed_src ? 1 : 0;
          if (want != pass % 3 || af_of(v->addr.family) != fam) continue;
          memset(&w->tx_group[n], 0, sizeof w->tx_group[n]);
          w->tx_group[n].msg_hdr.msg_name = (void *)&v->sa;
          w->tx_group[n].msg_hdr.msg_namelen = v->salen;
          if (t->encrypt) { /* sealed per VTEP (its key, its counter) into the arena */
            const size_t room = (DP_TUNNEL_HLEN + len + DP_SEC_OVERHEAD + 7) & ~(size_t)7;
            if (w->arena_used + room > DP_TX_ARENA) break; /* send these first */
            uint8_t *out = w->arena + w->arena_used;
            size_t dlen = tx_seal(w, v, vid, tid, iov[DP_ENCAP_VXLAN], 2, DP_TUNNEL_HLEN + len, out);
            if (!dlen) continue;
            w->arena_used += room;
            w->tx_iov[n] = (struct iovec){out, dlen};
            w->tx_group[n].msg_hdr.msg_iov = &w->tx_iov[n];
            w->tx_group[n].msg_hdr.msg_iovlen = 1;
            w->tx_group_d[n++] =
                (struct dp_txmsg){.vtep = vid, .tenant = tid, .nseg = 1, .bytes = (uint32_t)dlen, .secure = 1};
            continue;
          }
          w->tx_group[n].msg_hdr.msg_iov = iov[v->encap];
          w->tx_group[n].msg_hdr.msg_iovlen = 2;
          w->tx_group_d[n++] = (struct dp_txmsg){.vtep = vid, .tenant = tid, .nseg = 1, .bytes = (uint32_t)(DP_TUNNEL_HLEN + len)};
        }
        if (n) n_ok += tx_send(w, fd, w->tx_group, w->tx_group_d, n, 0);
        w->arena_used = 0;
      }
    }
  }
  pthread_rwlock_unlock(&dp->lock);
  *sent = n_ok;
  return 0;
}
