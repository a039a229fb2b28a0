/*
 * The switch: what the encap and decap threads do per batch. Encap reads frames from the
 * ports and switches each to a port or a VTEP (dp_tx.c queues and sends); decap reads the
 * underlay (VXLAN datagrams, UDP GRO buffers, raw GRE packets), pops the tunnel header
 * with the protocol module and switches the inner frame. Tables and helpers: dp_private.h.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dp_private.h"
#include "rawip.h"

/* ---- liveness ------------------------------------------------------------------------ */

/* A liveness message: "\0VTP" at the start of the UDP payload (src/overlay/liveness.ts). */
static inline bool is_control(const uint8_t *p, size_t len) {
  return len >= 4 && p[0] == 0x00 && p[1] == 0x56 && p[2] == 0x54 && p[3] == 0x50;
}

/* ---- encap: port -> underlay ------------------------------------------------------- */

void encap_frame(struct dp_worker *w, uint32_t pid, const struct dp_port *port, uint8_t *f, size_t len,
                 const struct vnet_hdr *vh) {
  struct dp *dp = w->dp;
  struct dp_io_counters *io = &w->stats.port[pid];
  count(w, DPC_tap_rx_frames);
  io_count(&io->rx_packets, &io->rx_bytes, len);

  bool gso = vh && vh->gso_type != VNET_GSO_NONE;
  if (len < PKT_ETH_HLEN) { drop(w, DPC_inner_runt, io); return; }
  if (len > (gso ? GSO_MAX_FRAME : DP_MAX_FRAME)) { drop(w, DPC_frame_too_big, io); return; }
  if (gso) count(w, DPC_tap_rx_gso_frames);
  uint32_t tid = port->tenant;
  const struct dp_tenant *t = &dp->tenants[tid];
  if (tid == 0 || !t->in_use) { drop(w, DPC_port_no_tenant, io); return; }
  if (eth_is_multicast(f + PKT_ETH_ALEN) || eth_is_zero(f + PKT_ETH_ALEN)) { drop(w, DPC_bad_src_mac, io); return; }

  learn(w, tid, f, DP_IN_PORT, pid, NULL, 0, io);

  if (!eth_is_multicast(f)) {
    const struct fdb_entry *e = fdb_lookup(&dp->fdb, fdb_key(tid, f));
    if (e && e->kind == FDB_KIND_PORT) {
      if (e->id == pid) { drop(w, DPC_hairpin, io); return; }
      port_deliver_vh(w, tid, e->id, f, len, vh, io);
      return;
    }
    if (e) {
      const struct dp_vtep *v = &dp->vteps[e->id];
      if (!v->in_use) { drop(w, DPC_vtep_gone, io); return; }
      if (v->mtu) {
        /* Path MTU: a super-frame goes out as segments, one segment's size counts. */
        size_t flen = len;
        struct gso_plan plan;
        if (gso && gso_plan(vh, f, len, &plan) == GSO_OK) flen = (size_t)plan.h.hdr_len + plan.mss;
        if (flen + vtep_outer_len(v, t->encrypt) > v->mtu) {
          too_big(w, tid, DP_IN_PORT, pid, NULL, 0, f, len, e->id, io);
          return;
        }
      }
      if ((t->mss4 | t->mss6) && !gso) mss_clamp(w, t, f, len, vh && (vh->flags & VNET_F_NEEDS_CSUM));
      if (gso) {
        tx_queue_gso(w, t, e->id, f, len, vh, io);
        return;
      }
      if (vh && (vh->flags & VNET_F_NEEDS_CSUM)) {
        if (!csum_finish(vh, f, len)) { drop(w, DPC_gso_bad, io); return; }
        count(w, DPC_csum_finished);
      }
      tx_queue(w, t, e->id, f, len);
      return;
    }
  }
  punt_vh(w, tid, pid, f, len, vh, io);
}

/*
 * Drain up to a batch from one ready port, switch it, flush the sends. A port whose peer
 * hung up or whose reads fail for good leaves the epoll set (a level-triggered error
 * would otherwise spin); it stays configured until dpPortDel. A TAP with a
 * virtio_net_hdr is read with the header in the headroom, just in front of the frame.
 */
/* The 802.1Q/802.1ad tag the kernel took off frame i before the packet socket saw it
 * (PACKET_AUXDATA): its TPID and TCI, or TPID 0 when the frame came untagged. */
static void packet_tag(struct dp_worker *w, unsigned i, struct msghdr *m) {
  w->rd_tpid[i] = 0;
  w->rd_tci[i] = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
    struct tpacket_auxdata a;
    memcpy(&a, CMSG_DATA(c), sizeof a);
    if (!(a.tp_status & TP_STATUS_VLAN_VALID)) continue;
    w->rd_tpid[i] = (a.tp_status & TP_STATUS_VLAN_TPID_VALID) && a.tp_vlan_tpid ? a.tp_vlan_tpid : 0x8100;
    w->rd_tci[i] = a.tp_vlan_tci;
  }
}

/*
 * An attached port: up to a batch of frames in one recvmmsg, each behind its
 * virtio_net_hdr as read() gives it, with its auxdata (the tag). Returns the frames read,
 * or -1 with errno when the first read failed.
 */
static int packet_read(struct dp_worker *w, int fd, size_t vl) {
  for (unsigned i = 0; i < DP_BATCH; i++) {
    w->rx_iov[i] = (struct iovec){.iov_base = worker_buf(w, i) - vl, .iov_len = DP_BUF_SIZE - DP_HEADROOM + vl};
    w->rx[i].msg_hdr = (struct msghdr){.msg_iov = &w->rx_iov[i], .msg_iovlen = 1, .msg_control = w->rd_aux[i].buf,
                                       .msg_controllen = sizeof w->rd_aux[i].buf};
  }
  int r;
  do r = recvmmsg(fd, w->rx, DP_BATCH, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  return r;
}

/* Frames from an attached port into w->len, w->rd_vh, w->rd_tpid/rd_tci: see encap_port. */
static unsigned encap_read_packet(struct dp_worker *w, uint32_t pid, int fd, size_t vl, uint32_t *events, bool *dead) {
  int r = packet_read(w, fd, vl);
  if (r < 0) {
    if (errno == ENETDOWN) {
      drop(w, DPC_tap_rx_error, &w->stats.port[pid]);
      *events &= ~(uint32_t)EPOLLERR;
    } else {
      *dead = errno != EAGAIN;
    }
    return 0;
  }
  unsigned n = 0;
  for (int k = 0; k < r; k++) {
    size_t got = w->rx[k].msg_len;
    if (got < vl) {
      drop(w, DPC_inner_runt, &w->stats.port[pid]);
      continue;
    }
    uint8_t *b = worker_buf(w, (unsigned)k);
    if ((unsigned)k != n) memmove(worker_buf(w, n) - vl, b - vl, got); /* after a runt: keep them packed */
    if (vl) memcpy(&w->rd_vh[n], worker_buf(w, n) - vl, VNET_HDR_LEN);
    packet_tag(w, n, &w->rx[k].msg_hdr);
    w->len[n++] = got - vl;
  }
  return n;
}

/* An 802.1Q/802.1ad TPID (the EtherType of a tagged frame). */
static inline bool is_vlan_tpid(uint16_t t) { return t == 0x8100 || t == 0x88a8 || t == 0x9100; }

/*
 * A frame read on a trunk: to the VLAN port its tag names (the tag the kernel took off,
 * w->rd_tpid/rd_tci; or, from a reader that leaves it in, the one in the frame, popped
 * here), untagged and VID 0 to the native one. Counted on the trunk as read; a frame no
 * VLAN port takes is dropped there by name.
 */
static void trunk_frame(struct dp_worker *w, uint32_t pid, const struct dp_port *trunk, unsigned i, size_t vl) {
  struct dp *dp = w->dp;
  struct dp_io_counters *io = &w->stats.port[pid];
  uint8_t *f = worker_buf(w, i);
  size_t len = w->len[i];
  struct vnet_hdr *vh = vl ? &w->rd_vh[i] : NULL;
  uint16_t tpid = w->rd_tpid[i], tci = w->rd_tci[i];
  io_count(&io->rx_packets, &io->rx_bytes, len);
  if (len < PKT_ETH_HLEN) {
    count(w, DPC_tap_rx_frames);
    drop(w, DPC_inner_runt, io);
    return;
  }
  uint16_t et = (uint16_t)(f[12] << 8 | f[13]);
  if (!tpid && is_vlan_tpid(et) && len >= PKT_ETH_HLEN + 4) {
    /* The tag is still in the frame: take it off (the MACs move 4 bytes on). */
    tpid = et;
    tci = (uint16_t)(f[14] << 8 | f[15]);
    memmove(f + 4, f, 12);
    f += 4;
    len -= 4;
    if (vh && (vh->flags & VNET_F_NEEDS_CSUM)) vh->csum_start = (uint16_t)(vh->csum_start - 4);
    if (vh && vh->gso_type != VNET_GSO_NONE && vh->hdr_len >= 4) vh->hdr_len = (uint16_t)(vh->hdr_len - 4);
    et = (uint16_t)(f[12] << 8 | f[13]);
  }
  enum dp_counter why = DPC_untagged_no_native;
  uint16_t lpid = 0;
  if (tpid && is_vlan_tpid(et)) {
    why = DPC_vlan_double;
  } else if (tpid && tpid != 0x8100) {
    why = DPC_vlan_unmapped; /* an S-tag alone: a service VLAN, never a tenant's */
  } else if (tpid && (tci & 0xfff)) {
    why = DPC_vlan_unmapped;
    lpid = trunk->vmap ? trunk->vmap[tci & 0xfff] : 0;
  } else {
    lpid = trunk->native_pid;
  }
  const struct dp_port *lp = &dp->ports[lpid];
  if (!lpid || !lp->in_use || lp->parent != pid) {
    count(w, DPC_tap_rx_frames);
    drop(w, why, io);
    return;
  }
  encap_frame(w, lpid, lp, f, len, vh);
}

/*
 * Queue load (#18, merged queues): what this thread read, in frames or packets plus one per
 * 2 KB (a super-frame or a GRO buffer weighs what it carries), per 100 ms window. Counted
 * at batch time only: an idle thread keeps no timer.
 */
static void load_note(struct dp_worker *w, unsigned n, size_t bytes) {
  const uint32_t now = w->now_ms, age = now - w->win_ms;
  if (age >= 100) {
    uint32_t f = w->win_frames;
    __atomic_store_n(&w->rate, age < 200 ? f : (uint32_t)((uint64_t)f * 100 / age), __ATOMIC_RELAXED);
    __atomic_store_n(&w->win_ms, now, __ATOMIC_RELAXED);
    __atomic_store_n(&w->win_frames, 0, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&w->win_frames, w->win_frames + n + (uint32_t)(bytes / 2048), __ATOMIC_RELAXED);
}

/* Thread w's load at `now` (read by the other thread of its queue too): its last whole
 * window, or its current one if that has more; a window left open over 200 ms ago (the
 * thread slept since) counts what it holds. */
static uint32_t load_of(const struct dp_worker *w, uint32_t now) {
  const uint32_t start = __atomic_load_n(&w->win_ms, __ATOMIC_RELAXED);
  const uint32_t cur = __atomic_load_n(&w->win_frames, __ATOMIC_RELAXED);
  const uint32_t rate = __atomic_load_n(&w->rate, __ATOMIC_RELAXED);
  const int32_t age = (int32_t)(now - start); /* < 0: opened after `now` was sampled */
  if (age >= 200) return cur;
  return rate > cur ? rate : cur;
}

/* encap_port with the port's read exclusion held; w is the thread running it (encap, or
 * decap answering a reply): its buffers, its transmit queue, its counters. Returns the
 * frames read. */
static unsigned encap_port_held(struct dp_worker *w, uint32_t pid, uint32_t events) {
  struct dp *dp = w->dp;
  const struct dp_port *port = &dp->ports[pid];
  const int fd = port_fd(port, w);
  const size_t vl = port->vnet ? VNET_HDR_LEN : 0;
  unsigned n = 0;
  size_t bytes = 0;
  bool dead = false;
  if (port->packet) n = encap_read_packet(w, pid, fd, vl, &events, &dead);
  /* Up to a batch of frames, or of bytes: super-frames are processed while still in cache. */
  while (!port->packet && n < DP_BATCH && bytes < DP_BATCH_BYTES) {
    uint8_t *b = worker_buf(w, n);
    ssize_t r = read(fd, b - vl, DP_BUF_SIZE - DP_HEADROOM + vl);
    if (r > 0) {
      if ((size_t)r < vl) {
        drop(w, DPC_inner_runt, &w->stats.port[pid]);
        continue;
      }
      if (vl) memcpy(&w->rd_vh[n], b - vl, VNET_HDR_LEN);
      w->rd_tpid[n] = 0; /* a TAP leaves any tag in the frame */
      w->len[n++] = (size_t)r - vl;
      bytes += (size_t)r;
    } else if (r == 0) {
      if (events & (EPOLLHUP | EPOLLRDHUP)) {
        dead = true; /* end of stream, not an empty message */
        break;
      }
      if (vl) memset(&w->rd_vh[n], 0, VNET_HDR_LEN);
      w->len[n++] = 0;
    } else if (errno == ENETDOWN) {
      /* An attached interface went down (or away): the packet socket says so once, then
       * reads nothing until it is up again. Counted; the port stays polled. */
      drop(w, DPC_tap_rx_error, &w->stats.port[pid]);
      events &= ~(uint32_t)EPOLLERR; /* the error was this, and it is read */
      break;
    } else if (errno != EINTR) {
      dead = errno != EAGAIN;
      break;
    }
  }
  if (n == 0 && (events & (EPOLLERR | EPOLLHUP))) dead = true;
  load_note(w, n, bytes);
  __atomic_store_n(&w->last_fill, port->packet || bytes >= DP_BATCH_BYTES ? DP_BATCH : n, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < n; i++) {
    if (port->trunk) {
      trunk_frame(w, pid, port, i, vl);
      continue;
    }
    if (port->packet && w->rd_tpid[i]) {
      /* An access port takes untagged frames only: a tag the kernel took off is no licence
       * to enter the tenant untagged. (A trunk classifies by it: trunk_frame.) */
      count(w, DPC_tap_rx_frames);
      io_count(&w->stats.port[pid].rx_packets, &w->stats.port[pid].rx_bytes, w->len[i]);
      drop(w, DPC_vlan_on_access, &w->stats.port[pid]);
      continue;
    }
    encap_frame(w, pid, port, worker_buf(w, i), w->len[i], vl ? &w->rd_vh[i] : NULL);
  }
  tx_flush(w);
  if (dead) {
    drop(w, DPC_tap_rx_error, &w->stats.port[pid]);
    epoll_ctl(dp->q_epfd[port_queue(port, w)], EPOLL_CTL_DEL, fd, NULL);
  }
  return n;
}

/*
 * Up to a batch from one ready port, switched, the sends flushed. Held against the decap
 * thread answering a reply on the same fd (reply_ports: one batch at most), so that a
 * flow's frames are read, switched and sent in order, each once.
 */
void encap_port(struct dp_worker *w, uint32_t pid, uint32_t events) {
  struct dp *dp = w->dp;
  if (pid == 0 || pid >= DP_MAX_PORTS || !dp->ports[pid].in_use) return;
  struct dp_port *port = &dp->ports[pid];
  const unsigned q = port_queue(port, w);
  if (!port_read_try(port, q)) port_read_wait(port, q);
  encap_port_held(w, pid, events);
  port_read_done(port, q);
}

void port_read_wait(struct dp_port *p, unsigned q) {
  while (__atomic_exchange_n(&p->reading[q], 2, __ATOMIC_ACQUIRE) != 0)
    syscall(SYS_futex, &p->reading[q], FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void port_read_done(struct dp_port *p, unsigned q) {
  if (__atomic_exchange_n(&p->reading[q], 0, __ATOMIC_RELEASE) == 2)
    syscall(SYS_futex, &p->reading[q], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void reply_ports(struct dp_worker *w, bool read) {
  struct dp *dp = w->dp;
  for (unsigned k = 0; k < w->nwrote; k++) {
    uint32_t pid = w->wrote[k];
    struct dp_port *p = &dp->ports[pid];
    const unsigned q = port_queue(p, w);
    if (read && p->in_use) {
      count(w, DPC_reply_batches);
      ctr_add(&w->stats.c[DPC_reply_frames], encap_port_held(w, pid, 0));
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = pid};
    epoll_ctl(dp->q_epfd[q], EPOLL_CTL_MOD, port_fd(p, w), &ev); /* re-armed (reply_hold) */
    port_read_done(p, q);
  }
  w->nwrote = 0;
  w->reply_on = false;
}

static bool decap_batch(struct dp_worker *w, int fd, bool gre, bool *big, unsigned *nread);

bool merged_read(struct dp_worker *w, unsigned i) {
  struct dp *dp = w->dp;
  const unsigned q = w->queue;
  /* The receive batch as worker_new set it up (a packet port's read reuses it). */
  for (unsigned k = 0; k < DP_BATCH; k++) {
    w->rx_iov[k] = (struct iovec){.iov_base = worker_buf(w, k), .iov_len = DP_BUF_SIZE - DP_HEADROOM};
    w->rx[k].msg_hdr = (struct msghdr){.msg_name = &w->rx_name[k], .msg_iov = &w->rx_iov[k], .msg_iovlen = 1,
                                       .msg_control = w->rx_cmsg[k].buf};
  }
  unsigned n = 0;
  const bool full = decap_batch(w, dp->q_src_fd[q][i], dp->q_src_gre[q][i], &w->mbig[i], &n);
  if (n) {
    count(w, DPC_merged_batches);
    ctr_add(&w->stats.c[DPC_merged_packets], n);
  }
  return full || w->mbig[i];
}

void queue_split(struct dp_worker *w) {
  struct dp *dp = w->dp;
  const unsigned q = w->queue;
  for (unsigned i = 0; i < dp->q_nsrc[q]; i++) epoll_ctl(w->epfd, EPOLL_CTL_DEL, dp->q_src_fd[q][i], NULL);
  __atomic_store_n(&dp->q_merged[q], 0, __ATOMIC_RELEASE);
  uint64_t one = 1;
  ssize_t r = write(dp->q_wake_fd[q], &one, sizeof one);
  (void)r;
}

void *encap_main(void *arg) {
  struct dp_worker *w = arg;
  struct dp *dp = w->dp;
  struct epoll_event ev[64];
  pthread_setname_np(pthread_self(), w->name);
  for (;;) {
    int n = epoll_wait(w->epfd, ev, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || __atomic_load_n(&dp->stopping, __ATOMIC_ACQUIRE)) break;
    pthread_rwlock_rdlock(&dp->lock);
    w->now_ms = (uint32_t)dp_now_ms();
    const bool merged = __atomic_load_n(&dp->q_merged[w->queue], __ATOMIC_ACQUIRE);
    bool heavy = false, ports = false;
    for (int i = 0; i < n; i++) {
      const uint32_t d = ev[i].data.u32;
      if (d & DP_EV_UNDERLAY) {
        if (merged) heavy |= merged_read(w, d & ~DP_EV_UNDERLAY);
      } else if (d != 0) {
        ports = true;
        encap_port(w, d, ev[i].events);
      }
    }
    /* A merged queue's wake-up for the underlay alone is a merged batch, not an encap batch. */
    if (ports) count(w, DPC_encap_batches);
    if (merged && (heavy || __atomic_load_n(&w->last_fill, __ATOMIC_RELAXED) >= DP_BATCH / 2 ||
                   load_of(w, w->now_ms) > DP_MERGE_HIGH))
      queue_split(w);
    pthread_rwlock_unlock(&dp->lock);
    worker_notify(w);
  }
  return NULL;
}

/* ---- decap: underlay -> port ------------------------------------------------------- */

/* Write the super-frame being coalesced (or its single segment as it is). */
void gro_flush(struct dp_worker *w) {
  if (!w->gro_active) return;
  w->gro_active = false;
  struct coalescer *c = &w->gro;
  struct vnet_hdr vh;
  unsigned niov = coalesce_finish(c, &vh);
  size_t len = VNET_HDR_LEN + c->total;
  const struct dp_port *p = &w->dp->ports[w->gro_port];
  if (c->nseg > 1) {
    ssize_t r = port_sys_writev(w, p, c->iov, (int)niov);
    if (r == (ssize_t)len) {
      count(w, DPC_gro_frames);
      ctr_add(&w->stats.c[DPC_gro_segments], c->nseg);
      port_tx_count(w, w->gro_port, c->total); /* the super-frame, without its virtio_net_hdr */
      return;
    }
    if (!(r < 0 && errno == EINVAL && c->h.proto == 17)) {
      drop(w, r < 0 && errno == EAGAIN ? DPC_tap_tx_busy : DPC_tap_tx_error, &w->stats.port[w->gro_port]);
      return;
    }
    /* A kernel without USO writes (before 6.2): UDP goes out datagram by datagram from now on. */
    w->dp->uso_write_ok = false;
    coalesce_unpatch(c);
    port_write_plain(w, w->gro_port, c->first, c->first_len);
    for (unsigned k = 2; k < niov; k++) {
      const uint8_t *pay = c->iov[k].iov_base;
      port_write_plain(w, w->gro_port, pay - c->h.hdr_len, c->h.hdr_len + c->iov[k].iov_len);
    }
    return;
  }
  port_writev(w, w->gro_port, c->iov, (int)niov, len);
}

/*
 * A decapsulated frame for a port. Toward a TAP with a virtio_net_hdr, TCP segments (and
 * UDP datagrams, as USO) are coalesced into one super-frame per flow and port. A
 * coalesced frame is written with NEEDS_CSUM, which the receiving stack takes as
 * verified, so each segment's checksum must be good: `trusted` says the kernel already
 * verified the outer UDP checksum over the whole datagram (it came through UDP GRO, which
 * never merges checksum-0 datagrams); otherwise the inner checksum is verified here.
 * Anything else goes out as it came, for the receiving stack to verify.
 */
static void decap_deliver(struct dp_worker *w, uint32_t tenant, uint32_t pid, uint8_t *f, size_t len, bool trusted,
                          struct dp_io_counters *in_io) {
  if (!port_ok(w, tenant, pid, in_io)) return;
  if (w->dp->ports[pid].vnet) {
    bool ok = trusted;
    if (!ok) {
      struct l34 h;
      /* Only what could join a super-frame is worth verifying: not a bare ACK. */
      if (l34_parse(f, len, &h) && len > h.hdr_len && (h.proto == 6 || (h.proto == 17 && w->dp->uso_write_ok))) {
        ok = l4_csum_ok(f, len, &h);
        if (!ok) count(w, DPC_gro_csum_bad);
      }
    }
    if (ok) {
      if (w->gro_active && w->gro_port == pid && coalesce_add(&w->gro, f, len)) return;
      gro_flush(w);
      if (tcp_coalesce_start(&w->gro, f, len) || (w->dp->uso_write_ok && udp_coalesce_start(&w->gro, f, len))) {
        w->gro_active = true;
        w->gro_port = pid;
        return;
      }
    } else {
      gro_flush(w); /* keep the order of this port's frames */
    }
  }
  port_write_plain(w, pid, f, len);
}

/* Per received buffer: the outer source, its VTEP, and the last decisions (a GRO buffer
 * holds many datagrams of one flow: classify once, not per segment). */
struct decap_ctx {
  struct dp_addr outer;
  uint16_t outer_port;
  uint32_t vid;
  struct dp_io_counters *io;
  bool trusted;
  uint32_t last_vni, last_tid;
  uint8_t last_eth[12]; /* dst + src of the last frame switched to last_pid */
  uint32_t last_pid_tid, last_pid;
  bool secure;           /* the frames authenticated under a receive key of VTEP vid */
  struct decap_ctx *sec; /* a UDP buffer's context for what it holds sealed */
};

static void decap_frame(struct dp_worker *w, struct decap_ctx *c, uint32_t tid, uint8_t *f, size_t flen);
static void decap_vxlan(struct dp_worker *w, struct decap_ctx *c, uint8_t *pkt, size_t len);

/* Does the outer source differ from where VTEP v is sent to (address and UDP port)? */
static bool endpoint_moved(const struct dp_vtep *v, const struct dp_addr *a, uint16_t port) {
  struct dp_addr va;
  uint16_t vport;
  if (!addr_from_sockaddr(&v->sa, &va, &vport)) return true;
  return vport != port || va.family != a->family || memcmp(va.bytes, a->bytes, sizeof va.bytes) != 0;
}

/*
 * A transport datagram (type 4/5, native/secure.h): the receive key by its index, a cheap
 * replay check, open in place (one tag per datagram, so per GRO segment), then the replay
 * window; nothing changes before the tag verified. From then on the packet is the key's
 * VTEP's, whatever its outer source: key confirmation (EV_KEY_USED, once), roaming
 * (EV_ENDPOINT, rate-limited), then a sealed liveness message (EV_SECURE) or VXLAN.
 */
static void decap_secure(struct dp_worker *w, struct decap_ctx *c, uint8_t *pkt, size_t len) {
  struct dp *dp = w->dp;
  if (len < DP_SEC_OVERHEAD + VXLAN_HLEN || (pkt[1] | pkt[2] | pkt[3])) { drop(w, DPC_secure_truncated, NULL); return; }
  const uint64_t ctr = sec_get_le64(pkt + 8);
  struct sec_rxkey *k = rxkey_lookup(dp, sec_get_le32(pkt + 4));
  if (!k) { drop(w, DPC_secure_unknown_index, NULL); return; }
  if (!sec_replay_precheck(k, ctr)) { drop(w, DPC_secure_replay, NULL); return; }
  uint8_t *p = pkt + DP_SEC_HLEN;
  const size_t plen = len - DP_SEC_OVERHEAD;
  int r = aead_open(&w->aead, pkt[0], k->key, k->gen, pkt, p, plen + DP_SEC_TAGLEN, p);
  if (r < 0) { drop(w, DPC_secure_crypto_error, NULL); return; }
  if (r == 0) { drop(w, DPC_secure_bad_tag, NULL); return; }
  const uint32_t vid = k->vtep;
  struct dp_io_counters *io = &w->stats.vtep[vid];
  if (!sec_replay_update(k, ctr)) { drop(w, DPC_secure_replay, io); return; }
  count(w, DPC_secure_rx_packets);
  io_count(&io->rx_packets, &io->rx_bytes, len);

  if (!__atomic_load_n(&k->used, __ATOMIC_RELAXED) && !__atomic_exchange_n(&k->used, 1, __ATOMIC_RELAXED)) {
    if (ev_emit_ex(w, DP_EV_KEY_USED, DP_IN_VTEP, 0, vid, &c->outer, c->outer_port, NULL, 0, k->index, io))
      count(w, DPC_key_used_events);
    else __atomic_store_n(&k->used, 0, __ATOMIC_RELAXED); /* the queue was full: the next packet tries again */
  }
  if (endpoint_moved(&dp->vteps[vid], &c->outer, c->outer_port)) {
    uint32_t *last = &w->endpoint_ms[vid], now = w->now_ms ? w->now_ms : 1;
    if (!*last || now - *last >= DP_SEC_ENDPOINT_MS) {
      *last = now;
      if (ev_emit_ex(w, DP_EV_ENDPOINT, DP_IN_VTEP, 0, vid, &c->outer, c->outer_port, NULL, 0, 0, io))
        count(w, DPC_endpoint_events);
    }
  }

  if (is_control(p, plen)) {
    count(w, DPC_secure_control_rx);
    if (plen <= DP_CONTROL_MAX) ev_emit_ex(w, DP_EV_SECURE, DP_IN_VTEP, 0, vid, &c->outer, c->outer_port, p, plen, 0, io);
    return;
  }
  /* VXLAN from the key's VTEP; the buffer's other sealed datagrams share the decisions. */
  struct decap_ctx *s = c->sec;
  if (s->vid != vid) {
    memset(s, 0, sizeof *s);
    s->vid = vid;
    s->io = io;
    s->secure = true;
  }
  s->outer = c->outer;
  s->outer_port = c->outer_port;
  s->trusted = c->trusted;
  decap_vxlan(w, s, p, plen);
}

static void decap_datagram(struct dp_worker *w, struct decap_ctx *c, uint8_t *pkt, size_t len) {
  struct dp_io_counters *io = c->io;
  count(w, DPC_underlay_rx_packets);
  /* Sealed: counted on the key's VTEP once it authenticated, never on the outer source's. */
  if (len && (pkt[0] == DP_SEC_AES_GCM || pkt[0] == DP_SEC_CHACHA)) {
    decap_secure(w, c, pkt, len);
    return;
  }
  if (io) io_count(&io->rx_packets, &io->rx_bytes, len);
  else count(w, DPC_unknown_vtep_packets);

  if (is_control(pkt, len)) { /* liveness: the control plane's, whatever VTEP it is from */
    count(w, DPC_control_rx);
    if (len <= DP_CONTROL_MAX)
      ev_emit_ex(w, DP_EV_CONTROL, c->vid ? DP_IN_VTEP : DP_IN_UNKNOWN_VTEP, 0, c->vid, &c->outer, c->outer_port, pkt, len, 0,
                 io);
    return;
  }
  if (len && pkt[0] >= DP_HS_INIT && pkt[0] <= DP_HS_COOKIE) { /* handshake: TypeScript's, as liveness */
    if (!sec_is_handshake(pkt, len)) { drop(w, DPC_handshake_malformed, io); return; }
    count(w, DPC_handshake_rx);
    ev_emit_ex(w, DP_EV_CONTROL, c->vid ? DP_IN_VTEP : DP_IN_UNKNOWN_VTEP, 0, c->vid, &c->outer, c->outer_port, pkt, len, 0, io);
    return;
  }
  decap_vxlan(w, c, pkt, len);
}

/* A VXLAN datagram (plain, or opened from a sealed one: c->secure): VNI -> tenant, then the frame. */
static void decap_vxlan(struct dp_worker *w, struct decap_ctx *c, uint8_t *pkt, size_t len) {
  struct dp *dp = w->dp;
  struct dp_io_counters *io = c->io;
  uint32_t vni;
  switch (vxlan_pop(pkt, len, &vni)) {
  case VXLAN_TRUNCATED:
    { drop(w, DPC_vxlan_truncated, io); return; }
  case VXLAN_BAD_FLAGS:
    { drop(w, DPC_vxlan_bad_flags, io); return; }
  case VXLAN_OK:
    break;
  }
  uint32_t tid;
  if (vni == c->last_vni && c->last_tid) {
    tid = c->last_tid;
  } else {
    tid = vni_lookup(dp, vni);
    if (tid && !(dp->tenants[tid].encaps & DP_ENCAP_BIT(DP_ENCAP_VXLAN))) tid = 0; /* a GRE-only tenant */
    c->last_vni = vni;
    c->last_tid = tid;
  }
  if (!tid) { drop(w, DPC_vxlan_unknown_vni, io); return; }
  decap_frame(w, c, tid, pkt + VXLAN_HLEN, len - VXLAN_HLEN);
}

/*
 * A decapsulated frame of tenant `tid` from VTEP c->vid (0: unknown), whatever carried it:
 * anti-spoofing, inner checks, learning, then a port, a relay or a punt.
 */
static void decap_frame(struct dp_worker *w, struct decap_ctx *c, uint32_t tid, uint8_t *f, size_t flen) {
  struct dp *dp = w->dp;
  struct dp_io_counters *io = c->io;
  if (dp->tenants[tid].encrypt && !c->secure) { drop(w, DPC_plaintext_refused, io); return; }
  if (!tenant_accepts(&dp->tenants[tid], c->vid)) { drop(w, DPC_vtep_not_accepted, io); return; }
  io_count(&w->stats.tenant[tid].rx_packets, &w->stats.tenant[tid].rx_bytes, flen);

  if (flen < PKT_ETH_HLEN) { drop(w, DPC_inner_runt, io); return; }
  if (flen > DP_MAX_FRAME) { drop(w, DPC_frame_too_big, io); return; }
  if (eth_is_vlan_tagged(f) && !dp->tenants[tid].inner_vlan) { drop(w, DPC_inner_vlan, io); return; }
  const struct dp_tenant *t = &dp->tenants[tid];
  if (t->mss4 | t->mss6) mss_clamp(w, t, f, flen, false);

  /* The same Ethernet addresses as the last frame of this buffer, known unicast to a
   * port: the source was learned (or reported) and the destination looked up already. */
  if (c->last_pid && c->last_pid_tid == tid && memcmp(f, c->last_eth, 12) == 0) {
    decap_deliver(w, tid, c->last_pid, f, flen, c->trusted, io);
    return;
  }
  if (eth_is_multicast(f + PKT_ETH_ALEN) || eth_is_zero(f + PKT_ETH_ALEN)) { drop(w, DPC_bad_src_mac, io); return; }

  uint8_t in_kind = c->vid ? DP_IN_VTEP : DP_IN_UNKNOWN_VTEP;
  learn(w, tid, f, in_kind, c->vid, &c->outer, c->outer_port, io);

  if (!eth_is_multicast(f)) {
    const struct fdb_entry *e = fdb_lookup(&dp->fdb, fdb_key(tid, f));
    if (e && e->kind == FDB_KIND_PORT) {
      c->last_pid = e->id;
      c->last_pid_tid = tid;
      memcpy(c->last_eth, f, 12);
      decap_deliver(w, tid, e->id, f, flen, c->trusted, io);
      return;
    }
    /* Split horizon: the underlay is a full mesh, a VTEP never relays to another. A hub
     * relays (spoke -> hub -> spoke), never back to the VTEP the frame came from. */
    if (e && !t->relay) { drop(w, DPC_split_horizon, io); return; }
    if (e) {
      const struct dp_vtep *v = &dp->vteps[e->id];
      if (e->id == c->vid) { drop(w, DPC_hairpin, io); return; }
      if (!v->in_use) { drop(w, DPC_vtep_gone, io); return; }
      if (v->mtu && flen + vtep_outer_len(v, t->encrypt) > v->mtu) {
        too_big(w, tid, in_kind, c->vid, &c->outer, c->outer_port, f, flen, e->id, io);
        return;
      }
      /* Re-encapsulated in place: the new VXLAN header goes where the old one was. */
      tx_queue(w, t, e->id, f, flen);
      count(w, DPC_relayed_frames);
      return;
    }
  }
  punt(w, tid, in_kind, c->vid, &c->outer, c->outer_port, f, flen, io);
}

/* One received buffer: a datagram, or (UDP GRO) several of gso_size bytes, the last shorter. */
void decap_buffer(struct dp_worker *w, unsigned i) {
  struct dp *dp = w->dp;
  struct mmsghdr *m = &w->rx[i];
  uint8_t *buf = w->rx_iov[i].iov_base;
  size_t len = m->msg_len;
  struct decap_ctx c, sc;
  memset(&c, 0, sizeof c);
  memset(&sc, 0, sizeof sc);
  c.sec = &sc;
  if (!addr_from_sockaddr(&w->rx_name[i], &c.outer, &c.outer_port)) {
    drop(w, DPC_underlay_rx_error, NULL);
    return;
  }
  c.vid = 0;
  if (dp->n_match_port) { /* a spoke behind NAT: address and port first */
    struct dp_addr k = c.outer;
    k.zero[0] = 1;
    k.zero[1] = (uint8_t)(c.outer_port >> 8);
    k.zero[2] = (uint8_t)c.outer_port;
    c.vid = vtep_lookup(dp, &k);
  }
  if (!c.vid) c.vid = vtep_lookup(dp, &c.outer);
  c.io = c.vid ? &w->stats.vtep[c.vid] : NULL;
  if (m->msg_hdr.msg_flags & MSG_TRUNC) {
    count(w, DPC_underlay_rx_packets);
    drop(w, DPC_frame_too_big, c.io);
    return;
  }
  size_t seg = 0;
  if (m->msg_hdr.msg_controllen) {
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m->msg_hdr); cm; cm = CMSG_NXTHDR(&m->msg_hdr, cm)) {
      if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
        int v;
        memcpy(&v, CMSG_DATA(cm), sizeof v);
        if (v > 0) seg = (size_t)v;
      }
    }
  }
  if (seg == 0 || seg >= len) {
    decap_datagram(w, &c, buf, len);
    return;
  }
  count(w, DPC_underlay_rx_gro_buffers);
  c.trusted = true;
  for (size_t off = 0; off < len; off += seg) decap_datagram(w, &c, buf + off, len - off < seg ? len - off : seg);
}

/*
 * One packet from the raw GRE socket: [outer IPv4 header (an IPv4 socket only)] GRE
 * header, Ethernet frame. gre_pop validates the header; the key then names the tenant:
 * the whole key a tenant taking GRE-TAP (key = VNI), else key >> 8 a tenant taking NVGRE
 * (VSID), which nvgre_pop then checks by NVGRE's rules. The VTEP is (outer source, that
 * encapsulation).
 */
void decap_gre_packet(struct dp_worker *w, unsigned i) {
  struct dp *dp = w->dp;
  struct mmsghdr *m = &w->rx[i];
  uint8_t *buf = w->rx_iov[i].iov_base;
  size_t off = 0, len = 0;
  struct decap_ctx c;
  memset(&c, 0, sizeof c);
  count(w, DPC_underlay_rx_packets);
  if (!addr_from_sockaddr(&w->rx_name[i], &c.outer, &c.outer_port)) {
    drop(w, DPC_underlay_rx_error, NULL);
    return;
  }
  c.outer_port = 0;
  if (rawip_payload(w->rx_name[i].ss_family, buf, m->msg_len, &off, &len) != 0) {
    drop(w, DPC_gre_truncated, NULL);
    return;
  }
  uint8_t *pkt = buf + off;
  struct gre_info info;
  enum gre_pop_result r = gre_pop(pkt, len, &info);
  uint32_t tid = 0;
  uint8_t encap = 0;
  if (r == GRE_OK) {
    tid = info.key <= VXLAN_VNI_MAX ? vni_lookup(dp, info.key) : 0;
    if (tid && (dp->tenants[tid].encaps & DP_ENCAP_BIT(DP_ENCAP_GRE))) {
      encap = DP_ENCAP_GRE;
    } else {
      tid = vni_lookup(dp, info.key >> 8);
      if (tid && (dp->tenants[tid].encaps & DP_ENCAP_BIT(DP_ENCAP_NVGRE))) encap = DP_ENCAP_NVGRE;
      else tid = 0;
    }
  }
  /* The VTEP: by the encapsulation the key says, or (a packet dropped before) either. */
  struct dp_addr k = c.outer;
  for (uint8_t e = encap ? encap : DP_ENCAP_GRE; !c.vid && e <= (encap ? encap : DP_ENCAP_NVGRE); e++) {
    k.zero[0] = (uint8_t)(e << DP_ADDR_ENCAP_SHIFT);
    c.vid = vtep_lookup(dp, &k);
  }
  c.io = c.vid ? &w->stats.vtep[c.vid] : NULL;
  if (c.io) io_count(&c.io->rx_packets, &c.io->rx_bytes, len);
  else count(w, DPC_unknown_vtep_packets);
  if (m->msg_hdr.msg_flags & MSG_TRUNC) { drop(w, DPC_frame_too_big, c.io); return; }

  static const enum dp_counter why[GRE_POP_RESULTS] = {
      [GRE_TRUNCATED] = DPC_gre_truncated,       [GRE_BAD_VERSION] = DPC_gre_bad_version,
      [GRE_RESERVED] = DPC_gre_reserved,         [GRE_BAD_PROTO] = DPC_gre_bad_proto,
      [GRE_BAD_CHECKSUM] = DPC_gre_bad_checksum, [GRE_SEQUENCED] = DPC_gre_sequenced,
      [GRE_NO_KEY] = DPC_gre_no_key,             [GRE_NVGRE_FLAGS] = DPC_nvgre_bad_flags,
      [GRE_NVGRE_VLAN] = DPC_inner_vlan,
  };
  if (r != GRE_OK) { drop(w, why[r], c.io); return; }
  if (!tid) { drop(w, DPC_gre_unknown_key, c.io); return; }
  /* NVGRE's own receive rules (RFC 7637: C and S clear, no inner 802.1Q tag): nvgre_pop. */
  if (encap == DP_ENCAP_NVGRE) {
    uint32_t vsid;
    uint8_t flow_id;
    if ((r = nvgre_pop(pkt, len, &info, &vsid, &flow_id)) != GRE_OK) { drop(w, why[r], c.io); return; }
  }
  c.outer.zero[0] = (uint8_t)(encap << DP_ADDR_ENCAP_SHIFT); /* learn events say how it came */
  decap_frame(w, &c, tid, pkt + info.hlen, len - info.hlen);
}

/*
 * Light load (#18): the decap thread reads back what the stacks behind its TAPs answered
 * inside its writes (reply_ports) while its own batch was neither full nor of GRO buffers
 * and its queue's encap thread's last read was under half a batch. Under load the encap
 * thread reads every port, as before.
 */
static inline bool reply_light(const struct dp_worker *w) {
  const struct dp *dp = w->dp;
  return __atomic_load_n(&dp->q_encap[w->queue]->last_fill, __ATOMIC_RELAXED) < DP_BATCH / 2;
}

/* Reset the receive batch's name and control lengths before a recvmmsg. */
static void rx_prepare(struct dp_worker *w) {
  for (unsigned i = 0; i < DP_BATCH; i++) {
    w->rx[i].msg_hdr.msg_namelen = sizeof w->rx_name[i];
    w->rx[i].msg_hdr.msg_controllen = sizeof w->rx_cmsg[i].buf;
  }
}

/*
 * One batch from one underlay socket (UDP: datagrams or GRO buffers; GRE: raw packets),
 * switched, then the sends and the coalesced writes flushed before the shared buffers are
 * read into again. True if the socket may hold more (a full batch).
 */
static bool decap_batch(struct dp_worker *w, int fd, bool gre, bool *big, unsigned *nread) {
  rx_prepare(w);
  /* (A merged queue's encap thread reads what the port answers at its next epoll_wait.) */
  w->reply_on = !*big && !w->is_encap && reply_light(w);
  /* Big (GRO) buffers come a few at a time, so each is written out while in cache. */
  unsigned vlen = !gre && *big ? DP_BATCH_BYTES / 65536 : DP_BATCH;
  int n = recvmmsg(fd, w->rx, vlen, MSG_DONTWAIT, NULL);
  if (n < 0 && errno != EAGAIN && errno != EINTR) count(w, DPC_underlay_rx_error);
  if (n > 0) count(w, DPC_decap_batches);
  size_t got = 0;
  for (int i = 0; i < n; i++) {
    got += w->rx[i].msg_len;
    if (gre) decap_gre_packet(w, (unsigned)i);
    else decap_buffer(w, (unsigned)i);
  }
  if (n > 0 && !gre) *big = got / (unsigned)n > 8192;
  *nread = n > 0 ? (unsigned)n : 0;
  load_note(w, *nread, got);
  tx_flush(w);  /* relayed frames (a hub), sent from these very buffers */
  gro_flush(w); /* before the buffers are read into again */
  const bool full = n > 0 && (unsigned)n == vlen;
  reply_ports(w, !full && !*big);
  return full;
}

void queue_merge(struct dp_worker *w) {
  struct dp *dp = w->dp;
  const unsigned q = w->queue;
  for (unsigned i = 0; i < dp->q_nsrc[q]; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = DP_EV_UNDERLAY | i};
    epoll_ctl(dp->q_epfd[q], EPOLL_CTL_ADD, dp->q_src_fd[q][i], &ev);
  }
  __atomic_store_n(&dp->q_merged[q], 1, __ATOMIC_RELEASE);
  count(w, DPC_queue_merges);
}

unsigned queue_sources(struct dp *dp, unsigned q) {
  /* Queue 0: all of them; another queue: its own receive socket (SO_REUSEPORT). */
  const int fds[4] = {q ? dp->q_rx_fd[q] : dp->rx_fd, q ? -1 : dp->gre_fd, !q && dp->alt.family ? dp->alt.rx_fd : -1,
                      !q && dp->alt.family ? dp->alt.gre_fd : -1};
  unsigned n = 0;
  for (unsigned i = 0; i < 4; i++)
    if (fds[i] >= 0) {
      dp->q_src_fd[q][n] = fds[i];
      dp->q_src_gre[q][n++] = i % 2 == 1;
    }
  return dp->q_nsrc[q] = n;
}

void *decap_main(void *arg) {
  struct dp_worker *w = arg;
  struct dp *dp = w->dp;
  const unsigned q = w->queue;
  /* The underlay sockets: UDP (VXLAN) and raw GRE, of one family or (dual stack) two. */
  struct { int fd; bool gre; bool big; } src[4];
  const unsigned nsrc = queue_sources(dp, q);
  for (unsigned i = 0; i < nsrc; i++) src[i] = (typeof(src[0])){dp->q_src_fd[q][i], dp->q_src_gre[q][i], false};
  struct pollfd pfd[6];
  pfd[0] = (struct pollfd){.fd = dp->stopfd, .events = POLLIN};
  pfd[1] = (struct pollfd){.fd = dp->q_wake_fd[q], .events = POLLIN};
  for (unsigned i = 0; i < nsrc; i++) pfd[2 + i] = (struct pollfd){.fd = src[i].fd, .events = POLLIN};
  pthread_setname_np(pthread_self(), w->name);
  for (;;) {
    int r = poll(pfd, 2 + nsrc, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || __atomic_load_n(&dp->stopping, __ATOMIC_ACQUIRE)) break;
    if (pfd[1].revents) {
      uint64_t v;
      ssize_t k = read(dp->q_wake_fd[q], &v, sizeof v);
      (void)k;
    }
    if (__atomic_load_n(&dp->q_merged[q], __ATOMIC_ACQUIRE)) continue; /* the encap thread reads them */
    for (unsigned i = 0; i < nsrc; i++) pfd[2 + i].fd = src[i].fd; /* split again (queue_split) */
    /* A few batches per wake-up while a socket stays full; the lock drops in between. */
    bool more = false;
    for (int round = 0; round < 8; round++) {
      pthread_rwlock_rdlock(&dp->lock);
      w->now_ms = (uint32_t)dp_now_ms();
      more = false;
      for (unsigned i = 0; i < nsrc; i++) {
        unsigned got;
        more |= decap_batch(w, src[i].fd, src[i].gre, &src[i].big, &got);
      }
      pthread_rwlock_unlock(&dp->lock);
      worker_notify(w);
      if (!more) break;
    }
    /* Light (both directions, and no GRO buffers): one thread for the queue until it is not. */
    bool big = false;
    for (unsigned i = 0; i < nsrc; i++) big |= src[i].big;
    const uint32_t now = (uint32_t)dp_now_ms();
    if (dp->merge_on && !more && !big && reply_light(w) && load_of(w, now) + load_of(dp->q_encap[q], now) < DP_MERGE_LOW) {
      queue_merge(w);
      for (unsigned i = 0; i < nsrc; i++) pfd[2 + i].fd = -1;
    }
  }
  return NULL;
}
