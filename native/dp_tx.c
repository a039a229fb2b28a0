/*
 * Output: frames written to ports (as they are, behind a virtio_net_hdr, segmented or
 * finished for a port without one), and the encap thread's underlay transmit queue
 * (datagrams and UDP_SEGMENT trains, flushed per socket). Also the per-frame checks on the
 * way out: path MTU (too_big) and MSS clamping.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <poll.h>
#include <string.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "csum.h"
#include "dp_private.h"

/* ---- path MTU, MSS clamping ------------------------------------------------------- */

#define TOO_BIG_PER_100MS 50

/*
 * A frame too big for VTEP `vid`'s path MTU: not sent (counted too_big), its first bytes
 * punted as EV_TOO_BIG so TypeScript answers the sender with ICMP where the frame came
 * from. At most TOO_BIG_PER_100MS events per 100 ms per thread (TCP needs one).
 */
void too_big(struct dp_worker *w, uint32_t tenant, uint8_t in_kind, uint32_t in_id, const struct dp_addr *outer,
             uint16_t outer_port, const uint8_t *f, size_t len, uint32_t vid, struct dp_io_counters *io) {
  drop(w, DPC_too_big, io);
  if (w->now_ms - w->tb_window_ms >= 100) {
    w->tb_window_ms = w->now_ms;
    w->tb_count = 0;
  }
  if (w->tb_count++ >= TOO_BIG_PER_100MS) return;
  ev_emit_ex(w, DP_EV_TOO_BIG, in_kind, tenant, in_id, outer, outer_port, f, len < DP_TOO_BIG_QUOTE ? len : DP_TOO_BIG_QUOTE,
             vid, io);
}

/*
 * MSS clamping: lower the MSS option of a TCP SYN (or SYN-ACK) to the tenant's clamp for
 * its IP version. The TCP checksum is updated incrementally (RFC 1624) over the 16-bit
 * words the option touches, or left alone in a checksum-partial frame (its field holds
 * the pseudo-header sum; the offload sums the new bytes). True if the option changed.
 */
bool mss_clamp(struct dp_worker *w, const struct dp_tenant *t, uint8_t *f, size_t len, bool csum_partial) {
  struct l34 h;
  if (!l34_parse(f, len, &h) || h.proto != 6) return false;
  uint8_t *tcp = f + h.l4;
  const size_t doff = (size_t)(h.hdr_len - h.l4);
  if (!(tcp[13] & 0x02)) return false; /* not a SYN */
  uint16_t clamp = h.v6 ? t->mss6 : t->mss4;
  if (!clamp) return false;
  for (size_t o = 20; o < doff;) {
    uint8_t kind = tcp[o];
    if (kind == 0) break; /* end of options */
    if (kind == 1) {      /* no-op */
      o++;
      continue;
    }
    if (o + 1 >= doff || tcp[o + 1] < 2 || o + tcp[o + 1] > doff) break;
    if (kind == 2 && tcp[o + 1] == 4) {
      uint16_t mss = pkt_get16(tcp + o + 2);
      if (mss <= clamp) return false;
      /* The 16-bit words (relative to the TCP header) the two bytes at o+2 fall in: one if
       * aligned, two if not; a byte past the end counts the same before and after. */
      size_t w0 = (o + 2) & ~(size_t)1, nw = ((o + 2) & 1) ? 2 : 1;
      uint16_t before[2], after;
      memcpy(before, tcp + w0, 2 * nw);
      tcp[o + 2] = (uint8_t)(clamp >> 8);
      tcp[o + 3] = (uint8_t)clamp;
      if (!csum_partial) {
        uint16_t check = csum_field_get(tcp + 16);
        for (size_t k = 0; k < nw; k++) {
          memcpy(&after, tcp + w0 + 2 * k, 2);
          check = csum_replace16(check, before[k], after);
        }
        csum_field_set(tcp + 16, check);
      }
      count(w, DPC_mss_clamped);
      return true;
    }
    o += tcp[o + 1];
  }
  return false;
}

/* ---- output: ports ------------------------------------------------------------------ */

static const struct vnet_hdr zero_vh;

/* Iovecs of the longest frame a port is written (a coalesced super-frame), and the tag's one. */
#define PORT_IOV_MAX (GRO_MAX_SEGS + 3)

/*
 * A VLAN port's frame (header + iovecs) with its 802.1Q tag put in after the MACs: the
 * first vl + 12 bytes gathered into `head` (the virtio_net_hdr's offsets moved on by the
 * tag's 4 bytes), the rest referenced. Returns the iovecs in `out`, or 0 when the frame is
 * shorter than its MACs or has more iovecs than PORT_IOV_MAX.
 */
static int vlan_tag_iov(const struct dp_port *p, const struct iovec *iov, int niov, uint8_t *head,
                        struct iovec *out) {
  const size_t vl = p->vnet ? VNET_HDR_LEN : 0, want = vl + 2 * PKT_ETH_ALEN;
  size_t got = 0, off = 0;
  int k = 0;
  while (k < niov && got < want) {
    size_t take = iov[k].iov_len - off < want - got ? iov[k].iov_len - off : want - got;
    memcpy(head + got, (const uint8_t *)iov[k].iov_base + off, take);
    got += take;
    off += take;
    if (off == iov[k].iov_len) k++, off = 0;
  }
  if (got < want || niov - k + 2 > PORT_IOV_MAX) return 0;
  if (vl) {
    struct vnet_hdr vh;
    memcpy(&vh, head, sizeof vh);
    if (vh.flags & VNET_F_NEEDS_CSUM) vh.csum_start = (uint16_t)(vh.csum_start + 4);
    if (vh.gso_type != VNET_GSO_NONE) vh.hdr_len = (uint16_t)(vh.hdr_len + 4);
    memcpy(head, &vh, sizeof vh);
  }
  head[want] = 0x81;
  head[want + 1] = 0x00;
  head[want + 2] = (uint8_t)(p->vlan >> 8);
  head[want + 3] = (uint8_t)p->vlan;
  int n = 0;
  out[n++] = (struct iovec){head, want + 4};
  if (k < niov && off) out[n++] = (struct iovec){(uint8_t *)iov[k].iov_base + off, iov[k].iov_len - off}, k++;
  while (k < niov) out[n++] = iov[k++];
  return n;
}

/*
 * A decap batch under light load is about to write to TAP port pid: it takes the port's
 * read exclusion first (up to DP_REPLY_PORTS ports), so that what the port's stack answers
 * inside the write waits for this thread (reply_ports) and not for the encap thread,
 * which the same write wakes.
 */
static void reply_hold(struct dp_worker *w, uint32_t pid) {
  for (unsigned k = 0; k < w->nwrote; k++)
    if (w->wrote[k] == pid) return;
  struct dp_port *p = &w->dp->ports[pid];
  const unsigned q = port_queue(p, w);
  if (w->nwrote >= DP_REPLY_PORTS || !port_read_try(p, q)) return;
  w->wrote[w->nwrote++] = (uint16_t)pid;
  /* Nor wakes the encap thread: the port leaves its epoll set's readiness until reply_ports. */
  struct epoll_event ev = {.events = 0, .data.u32 = pid};
  epoll_ctl(w->dp->q_epfd[q], EPOLL_CTL_MOD, port_fd(p, w), &ev);
}

/*
 * writev() of one frame to a port's fd, as writev returns (EINTR retried). A VLAN port of a
 * trunk writes through the trunk's fd with its tag put in (not for the native one, which
 * writes untagged); what it returns does not count the tag.
 */
ssize_t port_sys_writev(struct dp_worker *w, const struct dp_port *p, const struct iovec *iov, int niov) {
  if (w->reply_on && !p->packet && !p->parent && !p->trunk) reply_hold(w, (uint32_t)(p - w->dp->ports));
  uint8_t head[VNET_HDR_LEN + 2 * PKT_ETH_ALEN + 4];
  struct iovec out[PORT_IOV_MAX];
  bool tag = p->parent && p->vlan;
  if (tag) {
    niov = vlan_tag_iov(p, iov, niov, head, out);
    if (!niov) {
      errno = EINVAL;
      return -1;
    }
    iov = out;
  }
  ssize_t r;
  do r = writev(port_fd(p, w), iov, niov);
  while (r < 0 && errno == EINTR);
  return tag && r >= 4 ? r - 4 : r;
}

/* A frame written to a port: counted on it, and on its trunk for a VLAN port (frame bytes, as on rx). */
void port_tx_count(struct dp_worker *w, uint32_t pid, size_t frame_len) {
  const struct dp_port *p = &w->dp->ports[pid];
  count(w, DPC_tap_tx_frames);
  io_count(&w->stats.port[pid].tx_packets, &w->stats.port[pid].tx_bytes, frame_len);
  if (p->parent) io_count(&w->stats.port[p->parent].tx_packets, &w->stats.port[p->parent].tx_bytes, frame_len);
}

/* One write of one frame (header + iovecs) to a port; counted on the port. */
bool port_writev(struct dp_worker *w, uint32_t pid, const struct iovec *iov, int niov, size_t len) {
  const struct dp_port *p = &w->dp->ports[pid];
  ssize_t r = port_sys_writev(w, p, iov, niov);
  if (r == (ssize_t)len) {
    port_tx_count(w, pid, len - (p->vnet ? VNET_HDR_LEN : 0));
    return true;
  }
  drop(w, r < 0 && errno == EAGAIN ? DPC_tap_tx_busy : DPC_tap_tx_error, &w->stats.port[pid]);
  return false;
}

/* A plain frame to a port: as is to a plain port, behind a zero virtio_net_hdr to a TAP with one. */
bool port_write_plain(struct dp_worker *w, uint32_t pid, const uint8_t *frame, size_t len) {
  const struct dp_port *p = &w->dp->ports[pid];
  struct iovec iov[2] = {{(void *)&zero_vh, VNET_HDR_LEN}, {(void *)frame, len}};
  if (p->vnet) return port_writev(w, pid, iov, 2, VNET_HDR_LEN + len);
  return port_writev(w, pid, iov + 1, 1, len);
}

bool port_ok(struct dp_worker *w, uint32_t tenant, uint32_t pid, struct dp_io_counters *in_io) {
  const struct dp_port *p = &w->dp->ports[pid];
  if (p->in_use && p->tenant == tenant) return true;
  drop(w, DPC_port_no_tenant, in_io);
  return false;
}

bool port_deliver(struct dp_worker *w, uint32_t tenant, uint32_t pid, const uint8_t *frame, size_t len,
                  struct dp_io_counters *in_io) {
  return port_ok(w, tenant, pid, in_io) && port_write_plain(w, pid, frame, len);
}

/*
 * Every segment of a super-frame as a whole plain frame in the worker's scratch buffer,
 * handed to fn: for the slow paths (a punt, a port without a virtio_net_hdr).
 */
typedef void (*seg_fn)(struct dp_worker *w, const uint8_t *frame, size_t len, void *ctx);

static bool gso_each(struct dp_worker *w, const struct vnet_hdr *vh, const uint8_t *f, size_t len,
                     struct dp_io_counters *io, seg_fn fn, void *ctx) {
  struct gso_plan plan;
  if (gso_plan(vh, f, len, &plan) != GSO_OK || (size_t)plan.h.hdr_len + plan.mss > DP_BUF_SIZE - DP_HEADROOM) {
    drop(w, DPC_gso_bad, io);
    return false;
  }
  uint8_t *s = w->scratch;
  for (uint32_t i = 0; i < plan.nseg; i++) {
    uint32_t plen = gso_seg_payload(&plan, i);
    gso_segment(&plan, f, i, 1, s, plan.h.hdr_len);
    memcpy(s + plan.h.hdr_len, f + plan.h.hdr_len + (size_t)i * plan.mss, plen);
    ctr_add(&w->stats.c[DPC_gso_segments], 1);
    fn(w, s, plan.h.hdr_len + plen, ctx);
  }
  return true;
}

struct deliver_ctx {
  uint32_t tenant, pid;
  struct dp_io_counters *io;
};

static void deliver_seg(struct dp_worker *w, const uint8_t *frame, size_t len, void *arg) {
  struct deliver_ctx *c = arg;
  port_write_plain(w, c->pid, frame, len);
}

/*
 * A frame read from a port (vh: its virtio_net_hdr, or NULL) to another port. TAP to TAP
 * keeps the offloads (the header goes along); to a plain port a super-frame is segmented
 * and a partial checksum finished first.
 */
void port_deliver_vh(struct dp_worker *w, uint32_t tenant, uint32_t pid, uint8_t *f, size_t len,
                     const struct vnet_hdr *vh, struct dp_io_counters *in_io) {
  if (!port_ok(w, tenant, pid, in_io)) return;
  const struct dp_port *p = &w->dp->ports[pid];
  if (!vh || (vh->gso_type == VNET_GSO_NONE && !(vh->flags & VNET_F_NEEDS_CSUM))) {
    port_write_plain(w, pid, f, len);
  } else if (p->vnet) {
    struct iovec iov[2] = {{(void *)vh, VNET_HDR_LEN}, {f, len}};
    port_writev(w, pid, iov, 2, VNET_HDR_LEN + len);
  } else if (vh->gso_type != VNET_GSO_NONE) {
    struct deliver_ctx c = {tenant, pid, in_io};
    gso_each(w, vh, f, len, in_io, deliver_seg, &c);
  } else if (csum_finish(vh, f, len)) {
    count(w, DPC_csum_finished);
    port_write_plain(w, pid, f, len);
  } else {
    drop(w, DPC_gso_bad, in_io);
  }
}

struct punt_ctx {
  uint32_t tenant, in_id;
  struct dp_io_counters *io;
};

static void punt_seg(struct dp_worker *w, const uint8_t *frame, size_t len, void *arg) {
  struct punt_ctx *c = arg;
  punt(w, c->tenant, DP_IN_PORT, c->in_id, NULL, 0, frame, len, c->io);
}

/* Event records carry plain Ethernet frames: finish or segment first. */
void punt_vh(struct dp_worker *w, uint32_t tenant, uint32_t pid, uint8_t *f, size_t len,
             const struct vnet_hdr *vh, struct dp_io_counters *io) {
  if (vh && vh->gso_type != VNET_GSO_NONE) {
    struct punt_ctx c = {tenant, pid, io};
    gso_each(w, vh, f, len, io, punt_seg, &c);
    return;
  }
  if (vh && (vh->flags & VNET_F_NEEDS_CSUM)) {
    if (!csum_finish(vh, f, len)) { drop(w, DPC_gso_bad, io); return; }
    count(w, DPC_csum_finished);
  }
  punt(w, tenant, DP_IN_PORT, pid, NULL, 0, f, len, io);
}

/* ---- output: underlay ---------------------------------------------------------------- */

/*
 * The encap thread queues messages (a plain datagram, or a train of equal-sized VXLAN
 * datagrams sent with UDP_SEGMENT) and flushes them per source-port socket in queue
 * order. Over IPv4 a train needs the socket's UDP checksum on (the kernel refuses UDP GSO
 * with SO_NO_CHECK): it is offloaded (the NIC computes it; between namespaces nobody
 * does), while single datagrams keep checksum 0 (RFC 7348 §5).
 */


/* The descriptor behind a socket index of the transmit queue. */
static inline int sock_fd(const struct dp *dp, uint8_t s) {
  if (s & DP_SOCK_ALT) {
    s &= (uint8_t)~DP_SOCK_ALT;
    return s == DP_SOCK_RX ? dp->alt.rx_fd : s == DP_SOCK_GRE ? dp->alt.gre_fd : dp->alt.tx_fd[s];
  }
  return s == DP_SOCK_RX ? dp->rx_fd : s == DP_SOCK_GRE ? dp->gre_fd : dp->tx_fd[s];
}

static inline int sock_family(const struct dp *dp, uint8_t s) { return (s & DP_SOCK_ALT) ? dp->alt.family : dp->family; }

/* The socket index a VTEP's packets leave from: the GRE socket, the receive socket (fixed
 * source port) or the pool socket the inner flow hashes to, in the VTEP's family. */
static inline uint8_t vtep_sock(const struct dp *dp, const struct dp_vtep *v, uint32_t flow) {
  const bool alt = dp->alt.family && af_of(v->addr.family) == dp->alt.family;
  const uint8_t a = alt ? DP_SOCK_ALT : 0;
  if (v->encap != DP_ENCAP_VXLAN) return DP_SOCK_GRE | a;
  if (v->fixed_src) return DP_SOCK_RX | a;
  return (uint8_t)(pkt_hash_range(flow, alt ? dp->alt.ntx : dp->ntx) | a);
}

static void underlay_count_tx(struct dp_worker *w, const struct dp_txmsg *d) {
  struct dp_io_counters *io = &w->stats.vtep[d->vtep];
  ctr_add(&io->tx_packets, d->nseg);
  ctr_add(&io->tx_bytes, d->bytes);
  ctr_add(&w->stats.c[DPC_underlay_tx_packets], d->nseg);
  struct dp_io_counters *t = &w->stats.tenant[d->tenant];
  const uint32_t per = DP_TUNNEL_HLEN + (d->secure ? DP_SEC_OVERHEAD : 0);
  ctr_add(&t->tx_packets, d->nseg);
  ctr_add(&t->tx_bytes, d->bytes - (uint32_t)d->nseg * per); /* the inner frames */
  if (d->secure) ctr_add(&w->stats.c[DPC_secure_tx_packets], d->nseg);
}

static void underlay_drop(struct dp_worker *w, enum dp_counter why, const struct dp_txmsg *d) {
  ctr_add(&w->stats.c[why], d->nseg);
  ctr_add(&w->stats.vtep[d->vtep].drops, d->nseg);
  ctr_add(&w->stats.tenant[d->tenant].drops, d->nseg);
}

/* The kernel refused a train (EIO, EINVAL): send its segments as separate datagrams. */
static void train_fallback(struct dp_worker *w, int fd, const struct mmsghdr *m, const struct dp_txmsg *d, int err) {
  struct mmsghdr one[64];
  struct dp_txmsg seg[64];
  unsigned n = 0;
  ctr_add(&w->stats.c[DPC_underlay_gso_fallback], 1);
  /* EIO: this kernel or device cannot checksum a train; EINVAL may be a datagram too big
   * for the path (the separate sends then count it as underlay_tx_too_big). */
  if (err == EIO && ++w->dp->gso_fail_streak >= 8 && w->dp->gso_ok) {
    w->dp->gso_ok = false; /* the kernel keeps refusing: plain datagrams from now on */
    ctr_add(&w->stats.c[DPC_underlay_gso_disabled], 1);
  }
  const size_t per = m->msg_hdr.msg_iovlen / d->nseg; /* 2: headers + payload; 1: a whole datagram */
  for (size_t k = 0; k + per <= m->msg_hdr.msg_iovlen && n < 64; k += per) {
    memset(&one[n], 0, sizeof one[n]);
    one[n].msg_hdr.msg_name = m->msg_hdr.msg_name;
    one[n].msg_hdr.msg_namelen = m->msg_hdr.msg_namelen;
    one[n].msg_hdr.msg_iov = &m->msg_hdr.msg_iov[k];
    one[n].msg_hdr.msg_iovlen = per;
    uint32_t bytes = 0;
    for (size_t j = 0; j < per; j++) bytes += (uint32_t)m->msg_hdr.msg_iov[k + j].iov_len;
    seg[n] = (struct dp_txmsg){.vtep = d->vtep, .tenant = d->tenant, .nseg = 1, .bytes = bytes, .secure = d->secure};
    n++;
  }
  tx_send(w, fd, one, seg, n, 1);
}

/*
 * Send prepared messages on one underlay socket. A partial sendmmsg continues where the
 * kernel stopped; a message that fails is counted and skipped; EAGAIN waits at most
 * wait_ms once (the caller holds the read lock: never block long), then drops the rest.
 */
unsigned tx_send(struct dp_worker *w, int fd, struct mmsghdr *m, const struct dp_txmsg *d, unsigned n,
                 int wait_ms) {
  unsigned i = 0, sent = 0;
  bool waited = false;
  while (i < n) {
    int r = sendmmsg(fd, m + i, n - i, MSG_DONTWAIT);
    if (r > 0) {
      for (unsigned k = i; k < i + (unsigned)r; k++) {
        underlay_count_tx(w, &d[k]);
        if (d[k].train) {
          ctr_add(&w->stats.c[DPC_underlay_gso_sends], 1);
          w->dp->gso_fail_streak = 0;
        }
      }
      i += (unsigned)r;
      sent += (unsigned)r;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (err == EAGAIN) {
      if (!waited && wait_ms > 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, wait_ms);
        waited = true;
        continue;
      }
      for (; i < n; i++) underlay_drop(w, DPC_underlay_tx_busy, &d[i]);
      break;
    }
    if (d[i].train && (err == EIO || err == EINVAL)) train_fallback(w, fd, &m[i], &d[i], err);
    else underlay_drop(w, err == EMSGSIZE ? DPC_underlay_tx_too_big : DPC_underlay_tx_error, &d[i]);
    i++;
  }
  return sent;
}

/* Flush the queue: per socket, in queue order, runs of trains and of singles. */
void tx_flush(struct dp_worker *w) {
  struct dp *dp = w->dp;
  uint64_t done = 0;
  for (unsigned i = 0; i < w->ntx; i++) {
    if (done & (1ull << i)) continue;
    unsigned s = w->txm[i].sock, n = 0;
    for (unsigned j = i; j < w->ntx; j++) {
      if ((done & (1ull << j)) || w->txm[j].sock != s) continue;
      const struct dp_txmsg *d = &w->txm[j];
      const struct dp_vtep *v = &dp->vteps[d->vtep];
      struct mmsghdr *m = &w->tx_group[n];
      memset(m, 0, sizeof *m);
      m->msg_hdr.msg_name = (void *)&v->sa;
      m->msg_hdr.msg_namelen = v->salen;
      m->msg_hdr.msg_iov = &w->tx_iov[d->iov0];
      m->msg_hdr.msg_iovlen = d->niov;
      if (d->train) {
        m->msg_hdr.msg_control = w->tx_cmsg[j].buf;
        m->msg_hdr.msg_controllen = sizeof w->tx_cmsg[j].buf;
      }
      w->tx_group_d[n++] = *d;
      done |= 1ull << j;
    }
    int fd = sock_fd(dp, (uint8_t)s);
    for (unsigned a = 0; a < n;) {
      unsigned b = a + 1;
      bool train = w->tx_group_d[a].train;
      /* Only the encap thread switches SO_NO_CHECK (a relaying decap thread sends single
       * datagrams as the socket is); the receive socket keeps its checksums on. With more
       * than one queue the encap threads share the send sockets: checksums stay on. */
      if (sock_family(dp, (uint8_t)s) == AF_INET && w == dp->encap && dp->nqueues == 1 && (s & ~DP_SOCK_ALT) < DP_SOCK_RX) {
        while (b < n && w->tx_group_d[b].train == train) b++;
        if (train != w->csum_on[s]) {
          int off = train ? 0 : 1;
          if (setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &off, sizeof off) == 0) w->csum_on[s] = train;
        }
      } else {
        b = n;
      }
      tx_send(w, fd, w->tx_group + a, w->tx_group_d + a, b - a, 1);
      a = b;
    }
  }
  w->ntx = 0;
  w->ntx_iov = 0;
  w->arena_used = 0;
}

/* Room for one more message of niov iovecs and arena bytes, flushing first if needed. */
static void tx_reserve(struct dp_worker *w, unsigned niov, size_t arena) {
  if (w->ntx + 1 > DP_TX_MSGS || w->ntx_iov + niov > DP_TX_IOVS || w->arena_used + arena > DP_TX_ARENA) tx_flush(w);
}

static struct dp_txmsg *tx_msg(struct dp_worker *w, uint8_t sock, uint32_t vid, uint32_t tid, unsigned niov) {
  struct dp_txmsg *d = &w->txm[w->ntx++];
  d->sock = sock;
  d->vtep = vid;
  d->tenant = tid;
  d->iov0 = w->ntx_iov;
  d->niov = niov;
  d->train = 0;
  d->joinable = 0;
  d->secure = 0;
  d->nseg = 1;
  w->ntx_iov += niov;
  return d;
}

static void train_cmsg(struct dp_worker *w, struct dp_txmsg *d, uint16_t seg_size) {
  struct cmsghdr *cm = (struct cmsghdr *)w->tx_cmsg[d - w->txm].buf;
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  memcpy(CMSG_DATA(cm), &seg_size, sizeof seg_size);
  d->train = 1;
}

/*
 * Encapsulate a plain frame in place (headroom) and queue it toward a VTEP. Consecutive
 * datagrams to the same VTEP on the same socket with the same size (the last may be
 * shorter) join into one UDP_SEGMENT train: one skb through the stack for up to 64 of
 * them, and one UDP GRO buffer at a receiving vtepd.
 */
static void tx_queue_dgram(struct dp_worker *w, uint8_t sock, uint32_t vid, uint32_t tid, uint8_t *pkt, uint32_t dlen,
                           bool gre, bool secure);

/* A frame of an encrypted tenant that cannot go (no send key): counted on the VTEP and the tenant. */
static void secure_no_key(struct dp_worker *w, uint32_t vid, uint32_t tid) {
  const struct dp_txmsg d = {.vtep = vid, .tenant = tid, .nseg = 1};
  underlay_drop(w, DPC_secure_no_key, &d);
}

/*
 * Seal one datagram of an encrypted tenant toward VTEP v into the arena: the transport
 * header (its send key's peer index, the next counter), the ciphertext of the plaintext
 * gathered from in[], the tag. Returns its length, 0 if it could not (counted).
 */
size_t tx_seal(struct dp_worker *w, const struct dp_vtep *v, uint32_t vid, uint32_t tid, const struct iovec *in,
               unsigned nin, size_t plen, uint8_t *out) {
  struct sec_txkey *k = v->tx;
  uint64_t ctr;
  if (!k || v->encap != DP_ENCAP_VXLAN || !sec_tx_counters(k, 1, &ctr)) {
    secure_no_key(w, vid, tid);
    return 0;
  }
  sec_hdr_build(out, w->dp->tx_cipher, k->remote_index, ctr);
  if (!aead_seal(&w->aead, w->dp->tx_cipher, k->key, k->gen, out, in, nin, out + DP_SEC_HLEN)) {
    const struct dp_txmsg d = {.vtep = vid, .tenant = tid, .nseg = 1};
    underlay_drop(w, DPC_secure_crypto_error, &d);
    return 0;
  }
  return plen + DP_SEC_OVERHEAD;
}

/* An encrypted tenant's frame: VXLAN header pushed in place, then sealed into the arena. */
static void tx_queue_secure(struct dp_worker *w, const struct dp_tenant *t, uint32_t vid, uint8_t *frame, size_t len) {
  struct dp *dp = w->dp;
  const struct dp_vtep *v = &dp->vteps[vid];
  const uint32_t tid = (uint32_t)(t - dp->tenants);
  if (!v->tx || v->encap != DP_ENCAP_VXLAN) {
    secure_no_key(w, vid, tid);
    return;
  }
  const uint32_t flow = flow_hash(frame, len);
  const uint8_t sock = vtep_sock(dp, v, flow);
  const struct iovec in = {tunnel_push(t, DP_ENCAP_VXLAN, frame, flow), len + DP_TUNNEL_HLEN};
  const size_t room = (len + DP_TUNNEL_HLEN + DP_SEC_OVERHEAD + 7) & ~(size_t)7;
  tx_reserve(w, 1, room); /* before sealing into the arena: a flush would reuse it */
  uint8_t *out = w->arena + w->arena_used;
  size_t dlen = tx_seal(w, v, vid, tid, &in, 1, in.iov_len, out);
  if (!dlen) return;
  w->arena_used += room;
  tx_queue_dgram(w, sock, vid, tid, out, (uint32_t)dlen, false, true);
}

void tx_queue(struct dp_worker *w, const struct dp_tenant *t, uint32_t vid, uint8_t *frame, size_t len) {
  struct dp *dp = w->dp;
  if (t->encrypt) {
    tx_queue_secure(w, t, vid, frame, len);
    return;
  }
  const struct dp_vtep *v = &dp->vteps[vid];
  const bool gre = v->encap != DP_ENCAP_VXLAN; /* GRE-TAP, NVGRE: the raw socket, no trains */
  const uint32_t flow = flow_hash(frame, len);
  uint8_t sock = vtep_sock(dp, v, flow);
  uint8_t *pkt = tunnel_push(t, v->encap, frame, flow);
  tx_queue_dgram(w, sock, vid, (uint32_t)(t - dp->tenants), pkt, (uint32_t)(len + DP_TUNNEL_HLEN), gre, false);
}

/* Queue one datagram (dlen bytes at pkt, plain or sealed), joining the last message's train if it can. */
static void tx_queue_dgram(struct dp_worker *w, uint8_t sock, uint32_t vid, uint32_t tid, uint8_t *pkt, uint32_t dlen,
                           bool gre, bool secure) {
  struct dp *dp = w->dp;
  const struct dp_vtep *v = &dp->vteps[vid];
  /* A train needs the socket's UDP checksum on: only an encap thread switches it on a
   * pool socket (tx_flush; always on with several queues); the receive socket always has
   * it. A hub's decap thread, relaying, joins trains toward fixed-port VTEPs (its spokes)
   * and sends singles to the others. */
  if (!gre && dp->gso_ok && (w->is_encap || (sock & ~DP_SOCK_ALT) == DP_SOCK_RX) && w->ntx > 0 && w->ntx_iov < DP_TX_IOVS) {
    struct dp_txmsg *d = &w->txm[w->ntx - 1];
    const uint32_t max_dgram = v->addr.family == 4 ? 65507 : 65527;
    if (d->joinable && d->sock == sock && d->vtep == vid && d->secure == secure && dlen <= d->seg &&
        d->nseg < DP_GSO_MAX_SEGS && d->bytes + dlen <= max_dgram) {
      w->tx_iov[w->ntx_iov++] = (struct iovec){pkt, dlen};
      d->niov++;
      d->nseg++;
      d->bytes += dlen;
      if (dlen < d->seg) d->joinable = 0; /* a short one ends the train */
      if (!d->train) train_cmsg(w, d, (uint16_t)d->seg);
      return;
    }
  }
  tx_reserve(w, 1, 0);
  struct dp_txmsg *d = tx_msg(w, sock, vid, tid, 1);
  w->tx_iov[d->iov0] = (struct iovec){pkt, dlen};
  d->bytes = dlen;
  d->seg = dlen;
  d->secure = secure;
  d->joinable = !gre && dlen <= 0xffff;
}

/*
 * A super-frame of an encrypted tenant: each segment is sealed on its own (one header and
 * tag each) into the arena, contiguous: [transport header][VXLAN + inner headers + payload,
 * encrypted][tag]. A run of equal-sized datagrams (the last may be shorter) is one
 * UDP_SEGMENT message, so a receiving vtepd's UDP GRO buffer splits back into datagrams.
 */
static void tx_queue_gso_secure(struct dp_worker *w, const struct dp_tenant *t, uint32_t vid, const uint8_t *f,
                                size_t len, const struct gso_plan *plan) {
  struct dp *dp = w->dp;
  const struct dp_vtep *v = &dp->vteps[vid];
  const uint32_t tid = (uint32_t)(t - dp->tenants);
  struct sec_txkey *k = v->tx;
  if (!k || v->encap != DP_ENCAP_VXLAN) {
    secure_no_key(w, vid, tid);
    return;
  }
  const uint32_t flow = flow_hash(f, len);
  const uint8_t sock = vtep_sock(dp, v, flow);
  const size_t hl = DP_TUNNEL_HLEN + plan->h.hdr_len;
  const size_t seg_size = DP_SEC_OVERHEAD + hl + plan->mss, stride = (seg_size + 7) & ~(size_t)7;
  const size_t max_dgram = v->addr.family == 4 ? 65507 : 65527;
  unsigned per_msg = 1;
  if (dp->gso_ok && seg_size <= max_dgram) {
    per_msg = (unsigned)(max_dgram / seg_size);
    if (per_msg > DP_GSO_MAX_SEGS) per_msg = DP_GSO_MAX_SEGS;
  }
  uint64_t ctr;
  if (!sec_tx_counters(k, plan->nseg, &ctr)) {
    secure_no_key(w, vid, tid);
    return;
  }
  ctr_add(&w->stats.c[DPC_gso_segments], plan->nseg);
  for (uint32_t first = 0; first < plan->nseg; first += per_msg) {
    uint32_t n = plan->nseg - first < per_msg ? plan->nseg - first : per_msg;
    tx_reserve(w, n, n * stride);
    uint8_t *base = w->arena + w->arena_used;
    w->arena_used += n * stride;
    gso_segment(plan, f, first, n, base + DP_SEC_HLEN + DP_TUNNEL_HLEN, stride);
    struct dp_txmsg *d = tx_msg(w, sock, vid, tid, n);
    d->secure = 1;
    uint32_t bytes = 0;
    for (uint32_t j = 0; j < n; j++) {
      uint8_t *slot = base + j * stride;
      const uint32_t plen = gso_seg_payload(plan, first + j);
      tunnel_push(t, DP_ENCAP_VXLAN, slot + DP_SEC_HLEN + DP_TUNNEL_HLEN, flow);
      sec_hdr_build(slot, dp->tx_cipher, k->remote_index, ctr + first + j);
      const struct iovec in[2] = {{slot + DP_SEC_HLEN, hl},
                                  {(void *)(f + plan->h.hdr_len + (size_t)(first + j) * plan->mss), plen}};
      if (!aead_seal(&w->aead, dp->tx_cipher, k->key, k->gen, slot, in, 2, slot + DP_SEC_HLEN)) {
        /* OpenSSL failed (no memory): the run is dropped, not sent half sealed. */
        w->ntx--;
        w->ntx_iov -= n;
        const struct dp_txmsg dd = {.vtep = vid, .tenant = tid, .nseg = (uint16_t)n};
        underlay_drop(w, DPC_secure_crypto_error, &dd);
        return;
      }
      w->tx_iov[d->iov0 + j] = (struct iovec){slot, DP_SEC_OVERHEAD + hl + plen};
      bytes += (uint32_t)(DP_SEC_OVERHEAD + hl + plen);
    }
    d->nseg = (uint16_t)n;
    d->bytes = bytes;
    if (n > 1) train_cmsg(w, d, (uint16_t)seg_size);
  }
}

/*
 * A super-frame toward a VTEP: the headers of each segment (VXLAN + inner Ethernet/IP/
 * TCP, checksums final) go to the arena, the payloads stay where they were read, and
 * each run of up to 64 segments (and 64 KB) becomes one UDP_SEGMENT message: all
 * segments the same size but the last. Without UDP GSO, one message per segment.
 */
void tx_queue_gso(struct dp_worker *w, const struct dp_tenant *t, uint32_t vid, uint8_t *f, size_t len,
                  const struct vnet_hdr *vh, struct dp_io_counters *io) {
  struct dp *dp = w->dp;
  struct gso_plan plan;
  if (gso_plan(vh, f, len, &plan) != GSO_OK) {
    drop(w, DPC_gso_bad, io);
    return;
  }
  const struct dp_vtep *v = &dp->vteps[vid];
  if (t->encrypt) {
    tx_queue_gso_secure(w, t, vid, f, len, &plan);
    return;
  }
  const bool gre = v->encap != DP_ENCAP_VXLAN; /* one packet per segment on the raw socket */
  const uint32_t flow = flow_hash(f, len);
  uint8_t sock = vtep_sock(dp, v, flow);
  const size_t hl = DP_TUNNEL_HLEN + plan.h.hdr_len, slot = (hl + 7) & ~(size_t)7;
  const size_t seg_size = hl + plan.mss;
  const size_t max_dgram = v->addr.family == 4 ? 65507 : 65527;
  unsigned per_msg = 1;
  if (!gre && dp->gso_ok && seg_size <= max_dgram) {
    per_msg = (unsigned)(max_dgram / seg_size);
    if (per_msg > DP_GSO_MAX_SEGS) per_msg = DP_GSO_MAX_SEGS;
  }
  ctr_add(&w->stats.c[DPC_gso_segments], plan.nseg);
  for (uint32_t first = 0; first < plan.nseg; first += per_msg) {
    uint32_t n = plan.nseg - first < per_msg ? plan.nseg - first : per_msg;
    tx_reserve(w, 2 * n, n * slot);
    uint8_t *hdrs = w->arena + w->arena_used;
    w->arena_used += n * slot;
    gso_segment(&plan, f, first, n, hdrs + DP_TUNNEL_HLEN, slot);
    if (n == 1 || !dp->gso_ok) {
      for (uint32_t k = 0; k < n; k++) {
        uint32_t plen = gso_seg_payload(&plan, first + k);
        struct dp_txmsg *d = tx_msg(w, sock, vid, (uint32_t)(t - dp->tenants), 2);
        tunnel_push(t, v->encap, hdrs + k * slot + DP_TUNNEL_HLEN, flow);
        w->tx_iov[d->iov0] = (struct iovec){hdrs + k * slot, hl};
        w->tx_iov[d->iov0 + 1] = (struct iovec){f + plan.h.hdr_len + (size_t)(first + k) * plan.mss, plen};
        d->bytes = (uint32_t)(hl + plen);
      }
      continue;
    }
    struct dp_txmsg *d = tx_msg(w, sock, vid, (uint32_t)(t - dp->tenants), 2 * n);
    uint32_t bytes = 0;
    for (uint32_t k = 0; k < n; k++) {
      uint32_t plen = gso_seg_payload(&plan, first + k);
      tunnel_push(t, v->encap, hdrs + k * slot + DP_TUNNEL_HLEN, flow);
      w->tx_iov[d->iov0 + 2 * k] = (struct iovec){hdrs + k * slot, hl};
      w->tx_iov[d->iov0 + 2 * k + 1] = (struct iovec){f + plan.h.hdr_len + (size_t)(first + k) * plan.mss, plen};
      bytes += (uint32_t)(hl + plen);
    }
    d->nseg = (uint16_t)n;
    d->bytes = bytes;
    train_cmsg(w, d, (uint16_t)seg_size);
  }
}
