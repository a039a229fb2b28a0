#include "fastpath.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <netinet/udp.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "csum.h"
#include "fdb.h"
#include "gre.h"
#include "gso.h"
#include "packet.h"
#include "rawip.h"
#include "udp.h"
#include "vxlan.h"

const char *const dp_counter_names[DPC__COUNT] = {
#define C(name, help) #name,
#include "counters.def"
#undef C
};

/* Event record header: the EVENT layout of src/native/addon.ts, little endian, 8-aligned records. */
struct dp_event_hdr {
  uint32_t rec_len;
  uint8_t type;
  uint8_t in_kind;
  uint16_t outer_port;
  uint32_t tenant_id;
  uint32_t in_id;
  uint8_t outer_addr[16];
  uint8_t family; /* 4 or 6; 0 for IN_PORT */
  uint8_t encap;  /* DP_ENCAP_* the frame arrived in (events from the underlay); else 0 */
  uint8_t zero1[6];
  uint8_t src_mac[6];
  uint8_t zero2[2];
  uint32_t frame_len;
  uint32_t out_id; /* EV_TOO_BIG: the VTEP whose path MTU the frame exceeds; else 0 */
};
_Static_assert(sizeof(struct dp_event_hdr) == DP_EVENT_HEADER, "event header is 56 bytes");
_Static_assert(offsetof(struct dp_event_hdr, tenant_id) == 8, "tenantId at 8");
_Static_assert(offsetof(struct dp_event_hdr, outer_addr) == 16, "outerAddr at 16");
_Static_assert(offsetof(struct dp_event_hdr, family) == 32, "family at 32");
_Static_assert(offsetof(struct dp_event_hdr, src_mac) == 40, "srcMac at 40");
_Static_assert(offsetof(struct dp_event_hdr, frame_len) == 48, "frameLen at 48");
_Static_assert(DP_FDB_PORT == FDB_KIND_PORT && DP_FDB_VTEP == FDB_KIND_VTEP, "FDB kinds agree");
_Static_assert(DP_HEADROOM >= VXLAN_HLEN && DP_HEADROOM % 8 == 0, "headroom holds the outer header");
_Static_assert(DP_BUF_SIZE % 64 == 0, "buffers stay cache-line aligned");
_Static_assert(DP_TX_MSGS <= 64, "tx_flush tracks the queue in a 64-bit mask");
_Static_assert(DP_GSO_MAX_SEGS <= 64 && 2 * DP_GSO_MAX_SEGS <= DP_TX_IOVS, "a train fits the queue");
_Static_assert(DP_HEADROOM >= VNET_HDR_LEN + VXLAN_HLEN, "headroom holds a virtio_net_hdr");
_Static_assert(DP_BUF_SIZE - DP_HEADROOM >= GSO_MAX_FRAME, "a buffer holds a 64 KB super-frame");
_Static_assert(DP_MAX_SOURCE_PORTS <= 256, "tx_sock is a byte");
_Static_assert(DP_MAX_TENANTS <= 65536 && DP_MAX_VTEPS <= 65536, "id maps hold 16-bit ids");

/* How a tenant's frames and a VTEP's packets are wrapped: DP_ENCAP_* (fastpath.h). VXLAN
 * goes through the UDP sockets, GRE-TAP and NVGRE through the raw IPPROTO_GRE socket. All
 * three tunnel headers are 8 bytes (GRE always with its key), so headroom and segment
 * layouts are shared and only the template differs. */
_Static_assert(GRE_HLEN_KEY == VXLAN_HLEN, "GRE with key and VXLAN headers are both 8 bytes");
#define DP_TUNNEL_HLEN VXLAN_HLEN

/* An underlay address as a hash key: family and address, never the port (a kernel VXLAN
 * peer picks its source port per flow). Padding is zero so memcmp compares. A VTEP is
 * (address, encapsulation): zero[0] holds the encap << 4 for GRE-TAP and NVGRE (0 for
 * VXLAN), and 1 with the port in zero[1..2] for a VTEP matched by address and port. */
#define DP_ADDR_ENCAP_SHIFT 4
struct dp_addr {
  uint8_t family; /* 4 or 6 */
  uint8_t zero[3];
  uint8_t bytes[16]; /* IPv4 in the first 4 */
};

struct dp_tenant {
  bool in_use;
  uint8_t encaps; /* DP_ENCAP_BIT()s taken on receive (dp_tenant_encaps); VXLAN by default */
  /* Anti-spoofing: accept encapsulated frames from any source, or only from the VTEPs
   * whose bit is set in `accept` (its flood list, static entries, hubs, spokes). */
  bool accept_any;
  bool relay;            /* hub: VTEP -> VTEP forwarding (never back to the ingress VTEP) */
  uint16_t mss4, mss6;   /* MSS clamping of TCP SYNs, inner IPv4 / IPv6; 0 = off */
  uint32_t vni;
  struct vxlanhdr vxlan; /* header templates, copied per packet */
  struct gre_key_hdr gre, nvgre;
  uint64_t *accept;      /* DP_MAX_VTEPS bits, allocated with the tenant */
};

static inline bool tenant_accepts(const struct dp_tenant *t, uint32_t vid) {
  if (t->accept_any) return true;
  return vid && t->accept && (t->accept[vid >> 6] >> (vid & 63)) & 1;
}

struct dp_port {
  bool in_use;
  bool vnet; /* frames are read and written behind a virtio_net_hdr (a TAP with IFF_VNET_HDR) */
  int fd;    /* queue 0's: qfd[0] */
  uint8_t nq;                 /* fds in qfd (1..queues) */
  int qfd[DP_MAX_QUEUES];     /* queue q's encap thread reads qfd[q], its decap thread writes it */
  uint32_t tenant; /* 0 once its tenant is deleted: frames count port_no_tenant */
};

struct dp_vtep {
  bool in_use;
  bool fixed_src;  /* sent to from the receive socket (the underlay port): NAT, conntrack */
  bool match_port; /* its addr key carries the outer UDP port (a spoke behind NAT) */
  uint16_t mtu;    /* path MTU (largest outer IP packet); 0 = unchecked */
  uint8_t encap;
  struct dp_addr addr;
  socklen_t salen;
  struct sockaddr_storage sa; /* destination address and UDP port */
};

/* One per thread that counts (encap, decap, control), summed by dp_stats_read. */
struct dp_stats {
  uint64_t c[DPC__COUNT];
  struct dp_io_counters port[DP_MAX_PORTS];
  struct dp_io_counters vtep[DP_MAX_VTEPS];
  /* Per tenant, its tunnel traffic: inner frames and bytes sent to VTEPs (counted when
   * the datagram was taken by the kernel) and received from VTEPs it accepts. */
  struct dp_io_counters tenant[DP_MAX_TENANTS];
};

/* One queued underlay message: a datagram, or a train of nseg sent with UDP_SEGMENT. */
struct dp_txmsg {
  uint8_t sock;  /* index into tx_fd */
  uint8_t train;
  uint8_t joinable; /* plain datagrams of `seg` bytes may still join (tx_queue) */
  uint16_t nseg;
  uint32_t seg; /* datagram size of the train */
  uint32_t vtep;
  uint32_t tenant;
  uint32_t bytes;
  unsigned iov0, niov; /* its iovecs in tx_iov */
};

/* Learn-event suppression: a small set-associative "recently reported" cache per thread,
 * so a flow toward a MAC TypeScript has not programmed yet does not raise one event a
 * frame. 4 ways per set: live pairs that share a set do not evict each other per packet. */
#define LEARN_SEEN_SETS 1024
#define LEARN_SEEN_WAYS 4
#define LEARN_SEEN_MS 500

struct learn_seen {
  uint64_t key;   /* fdb key: tenant << 48 | mac */
  uint32_t place; /* in_kind << 24 | id; unknown VTEP: 3 << 24 | 24 bits of address hash */
  uint32_t at_ms;
};

struct dp_worker {
  struct dp *dp;
  const char *name;
  char name_buf[16];
  unsigned queue; /* 0..queues-1 (the control worker: 0) */
  bool is_encap;
  int epfd;       /* encap: the ports' queue fds (data = portId) and stopfd (data = 0) */
  pthread_t thread;
  bool running;
  uint32_t now_ms; /* sampled once per batch */
  uint32_t tb_window_ms, tb_count; /* EV_TOO_BIG rate: at most TOO_BIG_PER_100MS per 100 ms */
  bool events_queued;
  uint8_t *bufs; /* nbufs * DP_BUF_SIZE, each used from DP_HEADROOM on */
  size_t len[DP_BATCH];
  struct vnet_hdr rd_vh[DP_BATCH]; /* encap: the virtio_net_hdr of each frame read */
  uint8_t *scratch;                /* one frame: segments of a super-frame on slow paths */
  /* encap: underlay messages of the current batch, flushed per socket in order */
  unsigned ntx, ntx_iov;
  size_t arena_used;
  struct dp_txmsg txm[DP_TX_MSGS];
  struct iovec tx_iov[DP_TX_IOVS];
  uint8_t *arena; /* DP_TX_ARENA bytes: VXLAN + inner headers of segments */
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } tx_cmsg[DP_TX_MSGS];
  struct mmsghdr tx_group[DP_TX_MSGS];
  struct dp_txmsg tx_group_d[DP_TX_MSGS];
  bool csum_on[256]; /* IPv4 pool socket (by socket index): SO_NO_CHECK cleared (trains) */
  /* decap */
  struct mmsghdr rx[DP_BATCH];
  struct iovec rx_iov[DP_BATCH];
  struct sockaddr_storage rx_name[DP_BATCH];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } rx_cmsg[DP_BATCH];
  bool gro_active;
  uint32_t gro_port;
  struct coalescer gro;
  struct learn_seen seen[LEARN_SEEN_SETS][LEARN_SEEN_WAYS];
  struct dp_stats stats;
};

/* Two halves: producers append to half[cur] under mu; the JS thread swaps and reads. */
struct dp_evq {
  pthread_mutex_t mu;
  uint8_t *half[2];
  size_t len;
  int cur;
};
#define DP_EVQ_HALF (DP_EVENT_QUEUE_BYTES / 2)

/* Id maps: open addressing over ids (0 = empty); the key lives in the tenant/VTEP table.
 * Twice the slots of the id space keeps probes short. */
#define VNI_MAP_SLOTS (2 * DP_MAX_TENANTS)
#define ADDR_MAP_SLOTS (2 * DP_MAX_VTEPS)

struct dp {
  pthread_rwlock_t lock;
  struct dp_tenant tenants[DP_MAX_TENANTS];
  struct dp_port ports[DP_MAX_PORTS];
  struct dp_vtep vteps[DP_MAX_VTEPS];
  uint16_t vni_map[VNI_MAP_SLOTS];
  uint16_t addr_map[ADDR_MAP_SLOTS];
  struct fdb fdb;
  int family; /* AF_INET or AF_INET6: the underlay's */
  unsigned n_match_port; /* VTEPs keyed by address and port: decap looks them up first */
  bool gso_ok;              /* UDP_SEGMENT usable (probed; cleared if the kernel keeps refusing) */
  unsigned gso_fail_streak; /* trains refused in a row (encap thread) */
  bool gro_on;              /* UDP_GRO set on the receive socket */
  bool uso_write_ok;        /* TAPs take UDP super-frames (VNET_GSO_UDP_L4); cleared on EINVAL */
  uint16_t port;
  int rx_fd;
  int gre_fd; /* raw IPPROTO_GRE socket (GRE-TAP, NVGRE), or -1 */
  int tx_fd[DP_MAX_SOURCE_PORTS];
  unsigned ntx;
  /* Dual stack: the other family's sockets (dp_config.local2); family 0 when there are
   * none. Its socket indices in the transmit queue carry DP_SOCK_ALT. */
  struct {
    int family;
    int rx_fd, gre_fd;
    int tx_fd[DP_MAX_SOURCE_PORTS];
    unsigned ntx;
  } alt;
  int stopfd; /* eventfd, written once by dp_stop, never read: stays readable */
  bool started, stopped;
  int stopping;
  struct dp_worker *encap, *decap, *ctrl; /* queue 0's pair: q_encap[0], q_decap[0] */
  unsigned nqueues;
  struct dp_worker *q_encap[DP_MAX_QUEUES], *q_decap[DP_MAX_QUEUES];
  int q_epfd[DP_MAX_QUEUES];  /* queue q's encap epoll set: its ports' fds, and stopfd */
  int q_rx_fd[DP_MAX_QUEUES]; /* queues 1..: their receive sockets (queue 0's is rx_fd) */
  struct dp_evq evq;
  void (*notify)(void *);
  void *notify_arg;
  char err[256];
};

/* ---- small helpers ---------------------------------------------------------------- */

uint64_t dp_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Single writer per counter: a relaxed load+store (plain mov/add), no locked RMW; the
 * reader on the JS thread sees a torn-free value. */
static inline void ctr_add(uint64_t *c, uint64_t n) {
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t ctr_get(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

static inline void count(struct dp_worker *w, enum dp_counter c) { ctr_add(&w->stats.c[c], 1); }

static inline void io_count(uint64_t *packets, uint64_t *bytes, size_t len) {
  ctr_add(packets, 1);
  ctr_add(bytes, len);
}

/* A drop: the reason counter and, if the packet belongs to a port or VTEP, its drops. */
static inline void drop(struct dp_worker *w, enum dp_counter why, struct dp_io_counters *io) {
  ctr_add(&w->stats.c[why], 1);
  if (io) ctr_add(&io->drops, 1);
}

__attribute__((format(printf, 3, 4))) static int dp_fail(struct dp *dp, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dp->err, sizeof dp->err, fmt, ap);
  va_end(ap);
  return err;
}

const char *dp_last_error(const struct dp *dp) { return dp->err; }

static inline uint8_t *worker_buf(struct dp_worker *w, unsigned i) {
  return w->bufs + (size_t)i * DP_BUF_SIZE + DP_HEADROOM;
}

static bool addr_from_sockaddr(const struct sockaddr_storage *ss, struct dp_addr *a, uint16_t *port) {
  memset(a, 0, sizeof *a);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
    a->family = 4;
    memcpy(a->bytes, &in4->sin_addr, 4);
    *port = ntohs(in4->sin_port);
    return true;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    a->family = 6;
    memcpy(a->bytes, &in6->sin6_addr, 16);
    *port = ntohs(in6->sin6_port);
    return true;
  }
  return false;
}

static uint32_t addr_hash(const struct dp_addr *a) {
  uint32_t h = a->family;
  for (int i = 0; i < 16; i += 4) h = pkt_hash_mix(h, pkt_load32(a->bytes + i));
  return pkt_hash_final(h);
}

static inline uint32_t vni_hash(uint32_t vni) { return pkt_hash_final(vni + 0x9e3779b9u); }

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

static uint32_t vni_lookup(const struct dp *dp, uint32_t vni) {
  const uint32_t mask = VNI_MAP_SLOTS - 1;
  for (uint32_t i = vni_hash(vni) & mask;; i = (i + 1) & mask) {
    uint16_t id = dp->vni_map[i];
    if (!id || dp->tenants[id].vni == vni) return id;
  }
}

static uint32_t vtep_lookup(const struct dp *dp, const struct dp_addr *a) {
  const uint32_t mask = ADDR_MAP_SLOTS - 1;
  for (uint32_t i = addr_hash(a) & mask;; i = (i + 1) & mask) {
    uint16_t id = dp->addr_map[i];
    if (!id || memcmp(&dp->vteps[id].addr, a, sizeof *a) == 0) return id;
  }
}

/* ---- events ----------------------------------------------------------------------- */

/* Queue one record; frame + 6 is the source MAC (not for EV_CONTROL, whose "frame" is a
 * UDP payload); the frame (or payload) follows for every type but EV_LEARN. */
static bool ev_emit_ex(struct dp_worker *w, uint8_t type, uint8_t in_kind, uint32_t tenant, uint32_t in_id,
                       const struct dp_addr *outer, uint16_t outer_port, const uint8_t *frame, size_t frame_len,
                       uint32_t out_id, struct dp_io_counters *io) {
  struct dp_evq *q = &w->dp->evq;
  uint32_t body = type == DP_EV_LEARN ? 0 : (uint32_t)frame_len;
  uint32_t rec = (DP_EVENT_HEADER + body + 7) & ~7u;
  struct dp_event_hdr h;
  memset(&h, 0, sizeof h);
  h.rec_len = htole32(rec);
  h.type = type;
  h.in_kind = in_kind;
  h.outer_port = htole16(outer_port);
  h.tenant_id = htole32(tenant);
  h.in_id = htole32(in_id);
  if (outer) {
    memcpy(h.outer_addr, outer->bytes, sizeof h.outer_addr);
    h.family = outer->family;
    h.encap = (outer->zero[0] >> DP_ADDR_ENCAP_SHIFT) ? (outer->zero[0] >> DP_ADDR_ENCAP_SHIFT) : DP_ENCAP_VXLAN;
  }
  if (type != DP_EV_CONTROL) memcpy(h.src_mac, frame + PKT_ETH_ALEN, PKT_ETH_ALEN);
  h.frame_len = htole32(body);
  h.out_id = htole32(out_id);

  pthread_mutex_lock(&q->mu);
  bool fits = q->len + rec <= DP_EVQ_HALF;
  if (fits) {
    uint8_t *p = q->half[q->cur] + q->len;
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, frame, body);
    memset(p + sizeof h + body, 0, rec - sizeof h - body);
    q->len += rec;
  }
  pthread_mutex_unlock(&q->mu);
  if (!fits) {
    drop(w, DPC_event_queue_full, io);
    return false;
  }
  w->events_queued = true;
  return true;
}

static inline bool ev_emit(struct dp_worker *w, uint8_t type, uint8_t in_kind, uint32_t tenant, uint32_t in_id,
                           const struct dp_addr *outer, uint16_t outer_port, const uint8_t *frame, size_t frame_len,
                           struct dp_io_counters *io) {
  return ev_emit_ex(w, type, in_kind, tenant, in_id, outer, outer_port, frame, frame_len, 0, io);
}

void dp_events_take(struct dp *dp, const uint8_t **data, size_t *len) {
  struct dp_evq *q = &dp->evq;
  pthread_mutex_lock(&q->mu);
  *data = q->half[q->cur];
  *len = q->len;
  q->cur ^= 1;
  q->len = 0;
  pthread_mutex_unlock(&q->mu);
}

/* After a batch: one wake-up of the JS thread, however many events the batch queued. */
static void worker_notify(struct dp_worker *w) {
  if (!w->events_queued) return;
  w->events_queued = false;
  if (w->dp->notify) w->dp->notify(w->dp->notify_arg);
}

/*
 * Source learning: TypeScript decides (limits, moves, ageing); the fast path reports a
 * source MAC that the cache does not have at this place, at most once per LEARN_SEEN_MS
 * per (tenant, MAC, place). A hit at the same place only refreshes last_seen.
 */
static void learn(struct dp_worker *w, uint32_t tenant, const uint8_t *frame, uint8_t in_kind, uint32_t in_id,
                  const struct dp_addr *outer, uint16_t outer_port, struct dp_io_counters *io) {
  uint64_t key = fdb_key(tenant, frame + PKT_ETH_ALEN);
  uint32_t place;
  if (in_kind == DP_IN_UNKNOWN_VTEP) {
    place = (uint32_t)in_kind << 24 | (addr_hash(outer) & 0xffffff); /* no cache place to compare */
  } else {
    uint8_t kind = in_kind == DP_IN_PORT ? FDB_KIND_PORT : FDB_KIND_VTEP;
    struct fdb_entry *e = fdb_lookup(&w->dp->fdb, key);
    if (e && e->kind == kind && e->id == in_id) {
      fdb_touch(e, w->now_ms);
      return;
    }
    place = (uint32_t)in_kind << 24 | in_id;
  }
  uint32_t h = pkt_hash_mix(pkt_hash_mix(0, (uint32_t)key), (uint32_t)(key >> 32));
  struct learn_seen *set = w->seen[pkt_hash_final(pkt_hash_mix(h, place)) & (LEARN_SEEN_SETS - 1)];
  struct learn_seen *victim = &set[0];
  for (int i = 0; i < LEARN_SEEN_WAYS; i++) {
    struct learn_seen *s = &set[i];
    uint32_t age = w->now_ms - s->at_ms;
    if (s->key == key && s->place == place) {
      if (age < LEARN_SEEN_MS) return;
      victim = s;
      break;
    }
    if (s->key == 0 || age > (uint32_t)(w->now_ms - victim->at_ms)) victim = s; /* empty or oldest */
  }
  if (!ev_emit(w, DP_EV_LEARN, in_kind, tenant, in_id, outer, outer_port, frame, 0, io)) return;
  victim->key = key;
  victim->place = place;
  victim->at_ms = w->now_ms;
  count(w, DPC_learn_events);
}

/* Broadcast, multicast or unknown unicast: the whole frame goes to TypeScript to flood. */
static void punt(struct dp_worker *w, uint32_t tenant, uint8_t in_kind, uint32_t in_id, const struct dp_addr *outer,
                 uint16_t outer_port, const uint8_t *frame, size_t len, struct dp_io_counters *io) {
  if (ev_emit(w, DP_EV_MISS, in_kind, tenant, in_id, outer, outer_port, frame, len, io))
    count(w, DPC_punted_frames);
}

/* ---- path MTU, MSS clamping, liveness ------------------------------------------------- */

#define TOO_BIG_PER_100MS 50

/* Bytes in front of an Ethernet frame toward a VTEP: outer IP, then UDP + VXLAN or GRE. */
static inline size_t vtep_outer_len(const struct dp_vtep *v) {
  size_t ip = v->addr.family == 4 ? 20u : 40u;
  return v->encap == DP_ENCAP_VXLAN ? ip + 8u + VXLAN_HLEN : ip + GRE_HLEN_KEY;
}

/* The 8-byte tunnel header template of tenant t in encapsulation `encap`. */
static inline const void *tunnel_tmpl(const struct dp_tenant *t, uint8_t encap) {
  return encap == DP_ENCAP_GRE ? (const void *)&t->gre : encap == DP_ENCAP_NVGRE ? (const void *)&t->nvgre : (const void *)&t->vxlan;
}

/* Write the tunnel header at dst; NVGRE's FlowID is the low byte of the inner flow hash. */
static inline void tunnel_write(const struct dp_tenant *t, uint8_t encap, uint8_t *dst, uint32_t flow) {
  memcpy(dst, tunnel_tmpl(t, encap), DP_TUNNEL_HLEN);
  if (encap == DP_ENCAP_NVGRE) dst[7] = (uint8_t)flow;
}

/*
 * A frame too big for VTEP `vid`'s path MTU: not sent (counted too_big), its first bytes
 * punted as EV_TOO_BIG so TypeScript answers the sender with ICMP where the frame came
 * from. At most TOO_BIG_PER_100MS events per 100 ms per thread (TCP needs one).
 */
static void too_big(struct dp_worker *w, uint32_t tenant, uint8_t in_kind, uint32_t in_id, const struct dp_addr *outer,
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
static bool mss_clamp(struct dp_worker *w, const struct dp_tenant *t, uint8_t *f, size_t len, bool csum_partial) {
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

/* A liveness message: "\0VTP" at the start of the UDP payload (src/overlay/liveness.ts). */
static inline bool is_control(const uint8_t *p, size_t len) {
  return len >= 4 && p[0] == 0x00 && p[1] == 0x56 && p[2] == 0x54 && p[3] == 0x50;
}

/* ---- output: ports ------------------------------------------------------------------ */

static const struct vnet_hdr zero_vh;

/* The fd of the port's queue that this worker serves (queue 0's if the port has fewer). */
static inline int port_fd(const struct dp_port *p, const struct dp_worker *w) {
  return w->queue < p->nq ? p->qfd[w->queue] : p->fd;
}

/* One write of one frame (header + iovecs) to a port; counted on the port. */
static bool port_writev(struct dp_worker *w, uint32_t pid, const struct iovec *iov, int niov, size_t len) {
  const struct dp_port *p = &w->dp->ports[pid];
  struct dp_io_counters *io = &w->stats.port[pid];
  ssize_t r;
  do r = writev(port_fd(p, w), iov, niov);
  while (r < 0 && errno == EINTR);
  if (r == (ssize_t)len) {
    count(w, DPC_tap_tx_frames);
    io_count(&io->tx_packets, &io->tx_bytes, len - (p->vnet ? VNET_HDR_LEN : 0)); /* frame bytes, as on rx */
    return true;
  }
  drop(w, r < 0 && errno == EAGAIN ? DPC_tap_tx_busy : DPC_tap_tx_error, io);
  return false;
}

/* A plain frame to a port: as is to a plain port, behind a zero virtio_net_hdr to a TAP with one. */
static bool port_write_plain(struct dp_worker *w, uint32_t pid, const uint8_t *frame, size_t len) {
  const struct dp_port *p = &w->dp->ports[pid];
  struct iovec iov[2] = {{(void *)&zero_vh, VNET_HDR_LEN}, {(void *)frame, len}};
  if (p->vnet) return port_writev(w, pid, iov, 2, VNET_HDR_LEN + len);
  return port_writev(w, pid, iov + 1, 1, len);
}

static bool port_ok(struct dp_worker *w, uint32_t tenant, uint32_t pid, struct dp_io_counters *in_io) {
  const struct dp_port *p = &w->dp->ports[pid];
  if (p->in_use && p->tenant == tenant) return true;
  drop(w, DPC_port_no_tenant, in_io);
  return false;
}

static bool port_deliver(struct dp_worker *w, uint32_t tenant, uint32_t pid, const uint8_t *frame, size_t len,
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
static void port_deliver_vh(struct dp_worker *w, uint32_t tenant, uint32_t pid, uint8_t *f, size_t len,
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
static void punt_vh(struct dp_worker *w, uint32_t tenant, uint32_t pid, uint8_t *f, size_t len,
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

static unsigned tx_send(struct dp_worker *w, int fd, struct mmsghdr *m, const struct dp_txmsg *d, unsigned n,
                        int wait_ms);

/* tx_fd index meaning "the receive socket": VTEPs with fixed_src (NAT, conntrack). */
#define DP_SOCK_RX DP_MAX_SOURCE_PORTS
/* tx_fd index meaning "the raw GRE socket": GRE-TAP and NVGRE VTEPs. */
#define DP_SOCK_GRE (DP_MAX_SOURCE_PORTS + 1)
/* Flag on a socket index: the other family's set (dual stack). */
#define DP_SOCK_ALT 0x80
_Static_assert(DP_SOCK_GRE < DP_SOCK_ALT, "socket indices leave the ALT bit free");

static inline int af_of(uint8_t family46) { return family46 == 6 ? AF_INET6 : AF_INET; }

/* The descriptor behind a socket index of the transmit queue. */
static inline int sock_fd(const struct dp *dp, uint8_t s) {
  if (s & DP_SOCK_ALT) {
    s &= (uint8_t)~DP_SOCK_ALT;
    return s == DP_SOCK_RX ? dp->alt.rx_fd : s == DP_SOCK_GRE ? dp->alt.gre_fd : dp->alt.tx_fd[s];
  }
  return s == DP_SOCK_RX ? dp->rx_fd : s == DP_SOCK_GRE ? dp->gre_fd : dp->tx_fd[s];
}

static inline int sock_family(const struct dp *dp, uint8_t s) { return (s & DP_SOCK_ALT) ? dp->alt.family : dp->family; }

/* The raw GRE socket of an address family (AF_*), or -1. */
static inline int gre_fd_of(const struct dp *dp, int af) {
  return af == dp->family ? dp->gre_fd : af == dp->alt.family ? dp->alt.gre_fd : -1;
}

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
  ctr_add(&t->tx_packets, d->nseg);
  ctr_add(&t->tx_bytes, d->bytes - (uint32_t)d->nseg * DP_TUNNEL_HLEN); /* the inner frames */
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
    seg[n] = (struct dp_txmsg){.vtep = d->vtep, .tenant = d->tenant, .nseg = 1, .bytes = bytes};
    n++;
  }
  tx_send(w, fd, one, seg, n, 1);
}

/*
 * Send prepared messages on one underlay socket. A partial sendmmsg continues where the
 * kernel stopped; a message that fails is counted and skipped; EAGAIN waits at most
 * wait_ms once (the caller holds the read lock: never block long), then drops the rest.
 */
static unsigned tx_send(struct dp_worker *w, int fd, struct mmsghdr *m, const struct dp_txmsg *d, unsigned n,
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
static void tx_flush(struct dp_worker *w) {
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
static void tx_queue(struct dp_worker *w, const struct dp_tenant *t, uint32_t vid, uint8_t *frame, size_t len) {
  struct dp *dp = w->dp;
  const struct dp_vtep *v = &dp->vteps[vid];
  const bool gre = v->encap != DP_ENCAP_VXLAN; /* GRE-TAP, NVGRE: the raw socket, no trains */
  const uint32_t flow = flow_hash(frame, len);
  uint8_t sock = vtep_sock(dp, v, flow);
  uint8_t *pkt = frame - DP_TUNNEL_HLEN;
  tunnel_write(t, v->encap, pkt, flow);
  uint32_t dlen = (uint32_t)(len + DP_TUNNEL_HLEN);
  /* A train needs the socket's UDP checksum on: only an encap thread switches it on a
   * pool socket (tx_flush; always on with several queues); the receive socket always has
   * it. A hub's decap thread, relaying, joins trains toward fixed-port VTEPs (its spokes)
   * and sends singles to the others. */
  if (!gre && dp->gso_ok && (w->is_encap || (sock & ~DP_SOCK_ALT) == DP_SOCK_RX) && w->ntx > 0 && w->ntx_iov < DP_TX_IOVS) {
    struct dp_txmsg *d = &w->txm[w->ntx - 1];
    const uint32_t max_dgram = v->addr.family == 4 ? 65507 : 65527;
    if (d->joinable && d->sock == sock && d->vtep == vid && dlen <= d->seg && d->nseg < DP_GSO_MAX_SEGS &&
        d->bytes + dlen <= max_dgram) {
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
  struct dp_txmsg *d = tx_msg(w, sock, vid, (uint32_t)(t - dp->tenants), 1);
  w->tx_iov[d->iov0] = (struct iovec){pkt, dlen};
  d->bytes = dlen;
  d->seg = dlen;
  d->joinable = !gre && dlen <= 0xffff;
}

/*
 * A super-frame toward a VTEP: the headers of each segment (VXLAN + inner Ethernet/IP/
 * TCP, checksums final) go to the arena, the payloads stay where they were read, and
 * each run of up to 64 segments (and 64 KB) becomes one UDP_SEGMENT message: all
 * segments the same size but the last. Without UDP GSO, one message per segment.
 */
static void tx_queue_gso(struct dp_worker *w, const struct dp_tenant *t, uint32_t vid, uint8_t *f, size_t len,
                         const struct vnet_hdr *vh, struct dp_io_counters *io) {
  struct dp *dp = w->dp;
  struct gso_plan plan;
  if (gso_plan(vh, f, len, &plan) != GSO_OK) {
    drop(w, DPC_gso_bad, io);
    return;
  }
  const struct dp_vtep *v = &dp->vteps[vid];
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
        tunnel_write(t, v->encap, hdrs + k * slot, flow);
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
      tunnel_write(t, v->encap, hdrs + k * slot, flow);
      w->tx_iov[d->iov0 + 2 * k] = (struct iovec){hdrs + k * slot, hl};
      w->tx_iov[d->iov0 + 2 * k + 1] = (struct iovec){f + plan.h.hdr_len + (size_t)(first + k) * plan.mss, plen};
      bytes += (uint32_t)(hl + plen);
    }
    d->nseg = (uint16_t)n;
    d->bytes = bytes;
    train_cmsg(w, d, (uint16_t)seg_size);
  }
}

/* ---- encap: port -> underlay ------------------------------------------------------- */

static void encap_frame(struct dp_worker *w, uint32_t pid, const struct dp_port *port, uint8_t *f, size_t len,
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
        if (flen + vtep_outer_len(v) > v->mtu) {
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
static void encap_port(struct dp_worker *w, uint32_t pid, uint32_t events) {
  struct dp *dp = w->dp;
  if (pid == 0 || pid >= DP_MAX_PORTS || !dp->ports[pid].in_use) return;
  const struct dp_port *port = &dp->ports[pid];
  const int fd = port_fd(port, w);
  const size_t vl = port->vnet ? VNET_HDR_LEN : 0;
  unsigned n = 0;
  size_t bytes = 0;
  bool dead = false;
  /* Up to a batch of frames, or of bytes: super-frames are processed while still in cache. */
  while (n < DP_BATCH && bytes < DP_BATCH_BYTES) {
    uint8_t *b = worker_buf(w, n);
    ssize_t r = read(fd, b - vl, DP_BUF_SIZE - DP_HEADROOM + vl);
    if (r > 0) {
      if ((size_t)r < vl) {
        drop(w, DPC_inner_runt, &w->stats.port[pid]);
        continue;
      }
      if (vl) memcpy(&w->rd_vh[n], b - vl, VNET_HDR_LEN);
      w->len[n++] = (size_t)r - vl;
      bytes += (size_t)r;
    } else if (r == 0) {
      if (events & (EPOLLHUP | EPOLLRDHUP)) {
        dead = true; /* end of stream, not an empty message */
        break;
      }
      if (vl) memset(&w->rd_vh[n], 0, VNET_HDR_LEN);
      w->len[n++] = 0;
    } else if (errno != EINTR) {
      dead = errno != EAGAIN;
      break;
    }
  }
  if (n == 0 && (events & (EPOLLERR | EPOLLHUP))) dead = true;
  for (unsigned i = 0; i < n; i++) encap_frame(w, pid, port, worker_buf(w, i), w->len[i], vl ? &w->rd_vh[i] : NULL);
  tx_flush(w);
  if (dead) {
    drop(w, DPC_tap_rx_error, &w->stats.port[pid]);
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
  }
}

static void *encap_main(void *arg) {
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
    count(w, DPC_encap_batches);
    for (int i = 0; i < n; i++) {
      if (ev[i].data.u32 != 0) encap_port(w, ev[i].data.u32, ev[i].events);
    }
    pthread_rwlock_unlock(&dp->lock);
    worker_notify(w);
  }
  return NULL;
}

/* ---- decap: underlay -> port ------------------------------------------------------- */

/* Write the super-frame being coalesced (or its single segment as it is). */
static void gro_flush(struct dp_worker *w) {
  if (!w->gro_active) return;
  w->gro_active = false;
  struct coalescer *c = &w->gro;
  struct vnet_hdr vh;
  unsigned niov = coalesce_finish(c, &vh);
  size_t len = VNET_HDR_LEN + c->total;
  const struct dp_port *p = &w->dp->ports[w->gro_port];
  if (c->nseg > 1) {
    ssize_t r;
    do r = writev(port_fd(p, w), c->iov, (int)niov);
    while (r < 0 && errno == EINTR);
    if (r == (ssize_t)len) {
      struct dp_io_counters *io = &w->stats.port[w->gro_port];
      count(w, DPC_tap_tx_frames);
      count(w, DPC_gro_frames);
      ctr_add(&w->stats.c[DPC_gro_segments], c->nseg);
      io_count(&io->tx_packets, &io->tx_bytes, c->total); /* the super-frame, without its virtio_net_hdr */
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
};

static void decap_frame(struct dp_worker *w, struct decap_ctx *c, uint32_t tid, uint8_t *f, size_t flen);

static void decap_datagram(struct dp_worker *w, struct decap_ctx *c, uint8_t *pkt, size_t len) {
  struct dp *dp = w->dp;
  struct dp_io_counters *io = c->io;
  uint32_t vni;
  count(w, DPC_underlay_rx_packets);
  if (io) io_count(&io->rx_packets, &io->rx_bytes, len);
  else count(w, DPC_unknown_vtep_packets);

  if (is_control(pkt, len)) { /* liveness: the control plane's, whatever VTEP it is from */
    count(w, DPC_control_rx);
    if (len <= DP_CONTROL_MAX)
      ev_emit_ex(w, DP_EV_CONTROL, c->vid ? DP_IN_VTEP : DP_IN_UNKNOWN_VTEP, 0, c->vid, &c->outer, c->outer_port, pkt, len, 0,
                 io);
    return;
  }

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
  if (!tenant_accepts(&dp->tenants[tid], c->vid)) { drop(w, DPC_vtep_not_accepted, io); return; }
  io_count(&w->stats.tenant[tid].rx_packets, &w->stats.tenant[tid].rx_bytes, flen);

  if (flen < PKT_ETH_HLEN) { drop(w, DPC_inner_runt, io); return; }
  if (flen > DP_MAX_FRAME) { drop(w, DPC_frame_too_big, io); return; }
  if (eth_is_vlan_tagged(f)) { drop(w, DPC_inner_vlan, io); return; }
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
      if (v->mtu && flen + vtep_outer_len(v) > v->mtu) {
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
static void decap_buffer(struct dp_worker *w, unsigned i) {
  struct dp *dp = w->dp;
  struct mmsghdr *m = &w->rx[i];
  uint8_t *buf = w->rx_iov[i].iov_base;
  size_t len = m->msg_len;
  struct decap_ctx c;
  memset(&c, 0, sizeof c);
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
 * (VSID). The VTEP is (outer source, that encapsulation).
 */
static void decap_gre_packet(struct dp_worker *w, unsigned i) {
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
  /* RFC 7637: C and S clear (S never gets here: gre_pop refuses it). */
  if (encap == DP_ENCAP_NVGRE && (info.flags & GRE_F_CSUM)) { drop(w, DPC_nvgre_bad_flags, c.io); return; }
  c.outer.zero[0] = (uint8_t)(encap << DP_ADDR_ENCAP_SHIFT); /* learn events say how it came */
  decap_frame(w, &c, tid, pkt + info.hlen, len - info.hlen);
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
static bool decap_batch(struct dp_worker *w, int fd, bool gre, bool *big) {
  rx_prepare(w);
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
  tx_flush(w);  /* relayed frames (a hub), sent from these very buffers */
  gro_flush(w); /* before the buffers are read into again */
  return n > 0 && (unsigned)n == vlen;
}

static void *decap_main(void *arg) {
  struct dp_worker *w = arg;
  struct dp *dp = w->dp;
  /* The underlay sockets: UDP (VXLAN) and raw GRE, of one family or (dual stack) two. */
  struct { int fd; bool gre; bool big; } src[4];
  unsigned nsrc = 0;
  /* Queue 0: all of them; another queue: its own receive socket (SO_REUSEPORT). */
  const int fds[4] = {w->queue ? dp->q_rx_fd[w->queue] : dp->rx_fd, w->queue ? -1 : dp->gre_fd, !w->queue && dp->alt.family ? dp->alt.rx_fd : -1,
                      !w->queue && dp->alt.family ? dp->alt.gre_fd : -1};
  for (unsigned i = 0; i < 4; i++)
    if (fds[i] >= 0) src[nsrc++] = (typeof(src[0])){fds[i], i % 2 == 1, false};
  struct pollfd pfd[5];
  pfd[0] = (struct pollfd){.fd = dp->stopfd, .events = POLLIN};
  for (unsigned i = 0; i < nsrc; i++) pfd[1 + i] = (struct pollfd){.fd = src[i].fd, .events = POLLIN};
  pthread_setname_np(pthread_self(), w->name);
  for (;;) {
    int r = poll(pfd, 1 + nsrc, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || __atomic_load_n(&dp->stopping, __ATOMIC_ACQUIRE)) break;
    /* A few batches per wake-up while a socket stays full; the lock drops in between. */
    for (int round = 0; round < 8; round++) {
      pthread_rwlock_rdlock(&dp->lock);
      w->now_ms = (uint32_t)dp_now_ms();
      bool more = false;
      for (unsigned i = 0; i < nsrc; i++) more |= decap_batch(w, src[i].fd, src[i].gre, &src[i].big);
      pthread_rwlock_unlock(&dp->lock);
      worker_notify(w);
      if (!more) break;
    }
  }
  return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static struct dp_worker *worker_new(struct dp *dp, const char *name, unsigned nbufs) {
  struct dp_worker *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->dp = dp;
  w->name = name;
  w->epfd = -1;
  w->bufs = aligned_alloc(64, (size_t)nbufs * DP_BUF_SIZE);
  w->scratch = aligned_alloc(64, DP_BUF_SIZE);
  w->arena = aligned_alloc(64, DP_TX_ARENA);
  if (!w->bufs || !w->scratch || !w->arena) {
    free(w->bufs);
    free(w->scratch);
    free(w->arena);
    free(w);
    return NULL;
  }
  for (unsigned i = 0; i < DP_BATCH && i < nbufs; i++) {
    w->rx_iov[i].iov_base = worker_buf(w, i); /* headroom kept: re-encap in place later */
    w->rx_iov[i].iov_len = DP_BUF_SIZE - DP_HEADROOM;
    w->rx[i].msg_hdr.msg_name = &w->rx_name[i];
    w->rx[i].msg_hdr.msg_namelen = sizeof w->rx_name[i];
    w->rx[i].msg_hdr.msg_iov = &w->rx_iov[i];
    w->rx[i].msg_hdr.msg_iovlen = 1;
    w->rx[i].msg_hdr.msg_control = w->rx_cmsg[i].buf;
    w->rx[i].msg_hdr.msg_controllen = sizeof w->rx_cmsg[i].buf;
  }
  return w;
}

static void worker_free(struct dp_worker *w) {
  if (!w) return;
  free(w->bufs);
  free(w->scratch);
  free(w->arena);
  free(w);
}

/*
 * Liveness and NAT'd traffic leave from a family's receive socket: DF always, and the size
 * asked for, not the kernel's cached path MTU (PMTU probes find the real one).
 */
static void rx_sends_as_asked(int fd, int family) {
  int probe = family == AF_INET ? IP_PMTUDISC_PROBE : IPV6_PMTUDISC_PROBE;
  if (family == AF_INET) setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
  else setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof probe);
}

int dp_create(const struct dp_config *cfg, struct dp **out, const char **step) {
  struct dp *dp = calloc(1, sizeof *dp);
  if (!dp) {
    *step = "calloc";
    return ENOMEM;
  }
  dp->rx_fd = dp->gre_fd = dp->stopfd = -1;
  for (unsigned q = 0; q < DP_MAX_QUEUES; q++) dp->q_epfd[q] = dp->q_rx_fd[q] = -1;
  dp->alt.rx_fd = dp->alt.gre_fd = -1;
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* Writers (control calls) must not starve behind back-to-back fast-path batches. */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&dp->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  pthread_mutex_init(&dp->evq.mu, NULL);
  dp->family = cfg->local.ss_family;
  dp->port = sockaddr_port(&cfg->local);

  int err;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
  if ((err = fdb_init(&dp->fdb, DP_FDB_CAPACITY)) != 0) {
    *step = "FDB allocation";
    goto fail;
  }
  dp->evq.half[0] = malloc(DP_EVQ_HALF);
  dp->evq.half[1] = malloc(DP_EVQ_HALF);
  dp->nqueues = cfg->queues ? cfg->queues : 1;
  if (dp->nqueues > DP_MAX_QUEUES || (dp->nqueues > 1 && cfg->adopt_n)) {
    err = EINVAL;
    *step = dp->nqueues > DP_MAX_QUEUES ? "queues (1..8)" : "queues (adopted sockets take one queue)";
    goto fail;
  }
  for (unsigned q = 0; q < dp->nqueues; q++) {
    dp->q_encap[q] = worker_new(dp, "vtepd-encap", DP_BATCH);
    dp->q_decap[q] = worker_new(dp, "vtepd-decap", DP_BATCH);
    if (!dp->q_encap[q] || !dp->q_decap[q]) break;
    dp->q_encap[q]->queue = dp->q_decap[q]->queue = q;
    dp->q_encap[q]->is_encap = true;
    /* Thread names: vtepd-encap, vtepd-decap for queue 0; vtepd-encap1, … for the others. */
    if (q) {
      snprintf(dp->q_encap[q]->name_buf, sizeof dp->q_encap[q]->name_buf, "vtepd-encap%u", q);
      snprintf(dp->q_decap[q]->name_buf, sizeof dp->q_decap[q]->name_buf, "vtepd-decap%u", q);
      dp->q_encap[q]->name = dp->q_encap[q]->name_buf;
      dp->q_decap[q]->name = dp->q_decap[q]->name_buf;
    }
  }
  dp->encap = dp->q_encap[0];
  dp->decap = dp->q_decap[0];
  dp->ctrl = worker_new(dp, "vtepd-ctrl", 1);
  if (!dp->evq.half[0] || !dp->evq.half[1] || !dp->q_encap[dp->nqueues - 1] || !dp->q_decap[dp->nqueues - 1] || !dp->ctrl) {
    err = ENOMEM;
    *step = "buffer allocation";
    goto fail;
  }
  if ((dp->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
    err = errno;
    *step = "eventfd";
    goto fail;
  }
  for (unsigned q = 0; q < dp->nqueues; q++) {
    if ((dp->q_epfd[q] = epoll_create1(EPOLL_CLOEXEC)) < 0) {
      err = errno;
      *step = "epoll_create1";
      goto fail;
    }
    dp->q_encap[q]->epfd = dp->q_epfd[q];
    if (epoll_ctl(dp->q_epfd[q], EPOLL_CTL_ADD, dp->stopfd, &ev) < 0) {
      err = errno;
      *step = "epoll_ctl";
      goto fail;
    }
  }
  /* The raw GRE socket is never adopted (a takeover's successor opens its own). */
  if (cfg->gre && (err = rawip_open(&cfg->local, cfg->local_len, IPPROTO_GRE, &dp->gre_fd, step)) != 0) {
    if (*step && strcmp(*step, "socket") == 0) *step = "raw IPPROTO_GRE socket (GRE-TAP/NVGRE need CAP_NET_RAW)";
    goto fail;
  }
  /* Dual stack: the other family's sockets, same UDP port (also before the adopted ones). */
  if (cfg->local2_len) {
    if (cfg->local2.ss_family == cfg->local.ss_family || (cfg->local2.ss_family != AF_INET && cfg->local2.ss_family != AF_INET6)) {
      err = EINVAL;
      *step = "local2 (must be of the other address family)";
      goto fail;
    }
    struct sockaddr_storage l2 = cfg->local2;
    if (l2.ss_family == AF_INET) ((struct sockaddr_in *)&l2)->sin_port = htons(dp->port);
    else ((struct sockaddr_in6 *)&l2)->sin6_port = htons(dp->port);
    if (cfg->gre && (err = rawip_open(&l2, cfg->local2_len, IPPROTO_GRE, &dp->alt.gre_fd, step)) != 0) goto fail;
    if ((err = udp_rx_open(&l2, cfg->local2_len, false, &dp->alt.rx_fd, step)) != 0) goto fail;
    if ((err = udp_tx_pool_open(&l2, cfg->local2_len, cfg->source_ports, dp->port, dp->alt.tx_fd, step)) != 0) goto fail;
    dp->alt.ntx = cfg->source_ports;
    dp->alt.family = l2.ss_family;
    rx_sends_as_asked(dp->alt.rx_fd, l2.ss_family);
    if (!cfg->no_offloads) udp_rx_gro_enable(dp->alt.rx_fd);
  }
  /* Sockets last: a failure before here leaves adopted descriptors to the caller. */
  if (cfg->adopt_n) {
    if ((err = udp_adopt(&cfg->local, cfg->adopt_fds, cfg->adopt_n, step)) != 0) goto fail;
    dp->rx_fd = cfg->adopt_fds[0];
    for (unsigned i = 1; i < cfg->adopt_n; i++) dp->tx_fd[i - 1] = cfg->adopt_fds[i];
    dp->ntx = cfg->adopt_n - 1;
  } else {
    if ((err = udp_rx_open(&cfg->local, cfg->local_len, dp->nqueues > 1, &dp->rx_fd, step)) != 0) goto fail;
    /* Queues 1..: more receive sockets on the same address and port, in one reuseport group. */
    for (unsigned q = 1; q < dp->nqueues; q++)
      if ((err = udp_rx_open(&cfg->local, cfg->local_len, true, &dp->q_rx_fd[q], step)) != 0) goto fail;
    if ((err = udp_tx_pool_open(&cfg->local, cfg->local_len, cfg->source_ports, dp->port, dp->tx_fd, step)) != 0)
      goto fail;
    dp->ntx = cfg->source_ports;
    if (dp->nqueues > 1 && dp->family == AF_INET) {
      /* Shared by the encap threads: UDP checksums stay on (trains need them). */
      int off = 0;
      for (unsigned i = 0; i < dp->ntx; i++) setsockopt(dp->tx_fd[i], SOL_SOCKET, SO_NO_CHECK, &off, sizeof off);
    }
  }
  dp->uso_write_ok = !cfg->no_offloads;
  rx_sends_as_asked(dp->rx_fd, dp->family);
  dp->gro_on = !cfg->no_offloads && udp_rx_gro_enable(dp->rx_fd);
  /* The other queues' receive sockets only receive (nothing is sent from them). */
  for (unsigned q = 1; q < dp->nqueues && dp->gro_on; q++) udp_rx_gro_enable(dp->q_rx_fd[q]);
  dp->gso_ok = !cfg->no_offloads && udp_tx_gso_probe(dp->tx_fd[0]);
  *out = dp;
  return 0;
fail:
  dp_destroy(dp);
  return err;
}

int dp_start(struct dp *dp, void (*notify)(void *), void *arg) {
  if (dp->stopped) return dp_fail(dp, ESHUTDOWN, "the data path was stopped");
  if (dp->started) return dp_fail(dp, EALREADY, "the data path is already started");
  dp->notify = notify;
  dp->notify_arg = arg;
  /* Signals stay with Node's threads: ours start with all of them blocked. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = 0;
  for (unsigned q = 0; q < dp->nqueues && !err; q++) {
    err = pthread_create(&dp->q_encap[q]->thread, NULL, encap_main, dp->q_encap[q]);
    if (err) break;
    dp->q_encap[q]->running = true;
    err = pthread_create(&dp->q_decap[q]->thread, NULL, decap_main, dp->q_decap[q]);
    if (!err) dp->q_decap[q]->running = true;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  dp->started = true;
  if (err) {
    dp_stop(dp);
    return dp_fail(dp, err, "pthread_create failed");
  }
  return 0;
}

void dp_stop(struct dp *dp) {
  if (dp->stopped) return;
  dp->stopped = true;
  if (dp->started) {
    uint64_t one = 1;
    __atomic_store_n(&dp->stopping, 1, __ATOMIC_RELEASE);
    ssize_t r = write(dp->stopfd, &one, sizeof one);
    (void)r;
    for (unsigned q = 0; q < dp->nqueues; q++) {
      if (dp->q_encap[q]->running) pthread_join(dp->q_encap[q]->thread, NULL);
      if (dp->q_decap[q]->running) pthread_join(dp->q_decap[q]->thread, NULL);
      dp->q_encap[q]->running = dp->q_decap[q]->running = false;
    }
  }
  dp->notify = NULL;
  if (dp->rx_fd >= 0) close(dp->rx_fd);
  dp->rx_fd = -1;
  for (unsigned q = 1; q < DP_MAX_QUEUES; q++) {
    if (dp->q_rx_fd[q] >= 0) close(dp->q_rx_fd[q]);
    dp->q_rx_fd[q] = -1;
  }
  if (dp->gre_fd >= 0) close(dp->gre_fd);
  dp->gre_fd = -1;
  if (dp->alt.rx_fd >= 0) close(dp->alt.rx_fd);
  if (dp->alt.gre_fd >= 0) close(dp->alt.gre_fd);
  for (unsigned i = 0; i < dp->alt.ntx; i++) close(dp->alt.tx_fd[i]);
  dp->alt.rx_fd = dp->alt.gre_fd = -1;
  dp->alt.ntx = 0;
  for (unsigned i = 0; i < dp->ntx; i++) close(dp->tx_fd[i]);
  dp->ntx = 0;
}

unsigned dp_underlay_fds(struct dp *dp, int *fds) {
  /* Several queues: their reuseport group is not handed over (the successor binds anew). */
  if (dp->stopped || dp->rx_fd < 0 || dp->nqueues > 1) return 0;
  fds[0] = dp->rx_fd;
  for (unsigned i = 0; i < dp->ntx; i++) fds[1 + i] = dp->tx_fd[i];
  return 1 + dp->ntx;
}


void dp_destroy(struct dp *dp) {
  if (!dp) return;
  dp_stop(dp);
  for (unsigned q = 0; q < DP_MAX_QUEUES; q++)
    if (dp->q_epfd[q] >= 0) close(dp->q_epfd[q]);
  if (dp->stopfd >= 0) close(dp->stopfd);
  for (unsigned q = 0; q < DP_MAX_QUEUES; q++) {
    worker_free(dp->q_encap[q]);
    worker_free(dp->q_decap[q]);
  }
  worker_free(dp->ctrl);
  free(dp->evq.half[0]);
  free(dp->evq.half[1]);
  fdb_free(&dp->fdb);
  for (uint32_t t = 1; t < DP_MAX_TENANTS; t++) free(dp->tenants[t].accept);
  pthread_mutex_destroy(&dp->evq.mu);
  pthread_rwlock_destroy(&dp->lock);
  free(dp);
}

/* ---- control (JS thread) ------------------------------------------------------------ */

/* Every worker: the queues' pairs, then the control worker. Returns how many. */
static unsigned all_workers(struct dp *dp, struct dp_worker **ws) {
  unsigned n = 0;
  for (unsigned q = 0; q < dp->nqueues; q++) {
    ws[n++] = dp->q_encap[q];
    ws[n++] = dp->q_decap[q];
  }
  ws[n++] = dp->ctrl;
  return n;
}

enum io_kind { IO_PORT, IO_VTEP, IO_TENANT };

static struct dp_io_counters *io_of(struct dp_worker *w, enum io_kind k, uint32_t id) {
  return k == IO_PORT ? &w->stats.port[id] : k == IO_VTEP ? &w->stats.vtep[id] : &w->stats.tenant[id];
}

/* A new port, VTEP or tenant starts from zero counters in every thread's set. Write lock held. */
static void io_reset(struct dp *dp, enum io_kind k, uint32_t id) {
  struct dp_worker *ws[2 * DP_MAX_QUEUES + 1];
  unsigned nw = all_workers(dp, ws);
  for (unsigned i = 0; i < nw; i++) memset(io_of(ws[i], k, id), 0, sizeof(struct dp_io_counters));
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
  for (uint32_t p = 1; p < DP_MAX_PORTS; p++) {
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

int dp_port_set_queues(struct dp *dp, uint32_t pid, uint32_t tid, const int *fds, unsigned nfds, int vnet_hdr) {
  CHECK_ID(dp, "portId", pid, DP_MAX_PORTS);
  CHECK_ID(dp, "tenantId", tid, DP_MAX_TENANTS);
  if (nfds == 0 || nfds > dp->nqueues)
    return dp_fail(dp, EINVAL, "%u fds for port %u: the data path runs %u queue(s)", nfds, pid, dp->nqueues);
  int fl[DP_MAX_QUEUES];
  for (unsigned q = 0; q < nfds; q++) {
    const int fd = fds[q];
    if ((fl[q] = fcntl(fd, F_GETFL)) < 0) return dp_fail(dp, errno, "fd %d is not an open descriptor", fd);
    for (unsigned k = 0; k < q; k++)
      if (fds[k] == fd) return dp_fail(dp, EINVAL, "fd %d is given twice for port %u", fd, pid);
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
  }

  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  struct dp_port *p = &dp->ports[pid];
  if (!dp->tenants[tid].in_use) {
    err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
    goto out;
  }
  for (uint32_t i = 1; i < DP_MAX_PORTS; i++) {
    if (i == pid || !dp->ports[i].in_use) continue;
    for (unsigned a = 0; a < dp->ports[i].nq; a++)
      for (unsigned q = 0; q < nfds; q++)
        if (dp->ports[i].qfd[a] == fds[q]) {
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
  p->in_use = true;
out:
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
  port_unpoll(dp, p);
  fdb_del_pointing_at(&dp->fdb, FDB_KIND_PORT, pid);
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
  /* The id may be given to another VTEP: no tenant may keep accepting it. */
  for (uint32_t t = 1; t < DP_MAX_TENANTS; t++)
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
      tunnel_write(t, e, hdr[e], flow);
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
          w->tx_group[n].msg_hdr.msg_iov = iov[v->encap];
          w->tx_group[n].msg_hdr.msg_iovlen = 2;
          w->tx_group_d[n++] = (struct dp_txmsg){.vtep = vid, .tenant = tid, .nseg = 1, .bytes = (uint32_t)(DP_TUNNEL_HLEN + len)};
        }
        if (n) n_ok += tx_send(w, fd, w->tx_group, w->tx_group_d, n, 0);
      }
    }
  }
  pthread_rwlock_unlock(&dp->lock);
  *sent = n_ok;
  return 0;
}

static void io_sum(struct dp *dp, enum io_kind k, uint32_t id, struct dp_io_counters *out) {
  struct dp_worker *ws[2 * DP_MAX_QUEUES + 1];
  unsigned nw = all_workers(dp, ws);
  memset(out, 0, sizeof *out);
  for (unsigned i = 0; i < nw; i++) {
    const struct dp_io_counters *c = io_of(ws[i], k, id);
    out->rx_packets += ctr_get(&c->rx_packets);
    out->rx_bytes += ctr_get(&c->rx_bytes);
    out->tx_packets += ctr_get(&c->tx_packets);
    out->tx_bytes += ctr_get(&c->tx_bytes);
    out->drops += ctr_get(&c->drops);
  }
}

void dp_stats_read(struct dp *dp, uint64_t counters[DPC__COUNT], struct dp_io_stat *ports, uint32_t *nports,
                   struct dp_io_stat *vteps, uint32_t *nvteps) {
  struct dp_worker *ws[2 * DP_MAX_QUEUES + 1];
  unsigned nw = all_workers(dp, ws);
  for (int c = 0; c < DPC__COUNT; c++) {
    counters[c] = 0;
    for (unsigned i = 0; i < nw; i++) counters[c] += ctr_get(&ws[i]->stats.c[c]);
  }
  pthread_rwlock_rdlock(&dp->lock); /* in_use is stable only under the lock */
  *nports = *nvteps = 0;
  for (uint32_t id = 1; id < DP_MAX_PORTS; id++) {
    if (!dp->ports[id].in_use) continue;
    ports[*nports].id = id;
    io_sum(dp, IO_PORT, id, &ports[(*nports)++].c);
  }
  for (uint32_t id = 1; id < DP_MAX_VTEPS; id++) {
    if (!dp->vteps[id].in_use) continue;
    vteps[*nvteps].id = id;
    io_sum(dp, IO_VTEP, id, &vteps[(*nvteps)++].c);
  }
  pthread_rwlock_unlock(&dp->lock);
}

unsigned dp_tenant_stats(struct dp *dp, struct dp_io_stat *tenants) {
  unsigned n = 0;
  pthread_rwlock_rdlock(&dp->lock);
  for (uint32_t id = 1; id < DP_MAX_TENANTS; id++) {
    if (!dp->tenants[id].in_use) continue;
    tenants[n].id = id;
    io_sum(dp, IO_TENANT, id, &tenants[n++].c);
  }
  pthread_rwlock_unlock(&dp->lock);
  return n;
}

unsigned dp_queue_stats(struct dp *dp, uint64_t *encap_frames, uint64_t *decap_packets) {
  for (unsigned q = 0; q < dp->nqueues; q++) {
    encap_frames[q] = ctr_get(&dp->q_encap[q]->stats.c[DPC_tap_rx_frames]);
    decap_packets[q] = ctr_get(&dp->q_decap[q]->stats.c[DPC_underlay_rx_packets]);
  }
  return dp->nqueues;
}
