/*
 * The data path's private header: its tables and per-thread state, the helpers the hot
 * path inlines, and what each of its .c files offers the others. fastpath.h is the public
 * API; this file is the table of contents:
 *
 *   fastpath.c   the switch, per batch: encap (port -> VTEP or port), decap (VTEP -> port)
 *   dp_tx.c      output: writes to ports, the underlay transmit queue, path MTU, MSS clamping
 *   dp_events.c  event records (learn, miss, control, too big) and source learning
 *   dp_ctl.c     control calls from the JS thread: tenants, ports, VTEPs, FDB, transmit
 *   dp_life.c    create, start, stop, destroy: sockets, workers, threads
 *   dp_stats.c   counters: names, help, drop flags; per-thread sums
 *   secure.c     encrypted tunnels: key tables, AEAD (OpenSSL EVP), replay window (secure.h)
 *
 * Only the data path's own files include it (and the fuzz targets, which drive the per-batch
 * functions without threads).
 */
#ifndef VTEPD_DP_PRIVATE_H
#define VTEPD_DP_PRIVATE_H

#include <linux/if_packet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fastpath.h"
#include "fdb.h"
#include "gre.h"
#include "gso.h"
#include "packet.h"
#include "secure.h"
#include "vxlan.h"

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
  bool inner_vlan;       /* frames from VTEPs may carry an 802.1Q/802.1ad tag (innerVlan: allow); else inner_vlan drops */
  /* Encryption required: frames go to VTEPs only sealed with their send key (none: dropped,
   * secure_no_key), plain frames received for it are dropped (plaintext_refused). */
  bool encrypt;
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
  bool packet; /* an AF_PACKET socket (attached port): read with recvmmsg and PACKET_AUXDATA */
  int fd;    /* queue 0's: qfd[0] */
  uint8_t nq;                 /* fds in qfd (1..queues) */
  int qfd[DP_MAX_QUEUES];     /* queue q's encap thread reads qfd[q], its decap thread writes it */
  uint32_t tenant; /* 0 once its tenant is deleted: frames count port_no_tenant */
  /* A trunk (an attached interface carrying several tenants by 802.1Q VLAN ID): no tenant
   * of its own; each frame read goes to the VLAN port its tag (or its absence) names. */
  bool trunk;
  uint16_t *vmap;      /* trunk: VLAN ID (1..4094) -> its VLAN port id, 0 = unmapped */
  uint16_t native_pid; /* trunk: the VLAN port of untagged (and VID 0) frames, 0 = none */
  /* A VLAN port: one tenant's share of a trunk. It has no fd: it reads through the trunk's
   * classification and writes through the trunk's fd, with its tag put in (0: untagged). */
  uint16_t parent; /* the trunk's port id, 0 = not a VLAN port */
  uint16_t vlan;   /* the VLAN ID written on frames toward it; 0: untagged (native) */
  /* Queue q's read exclusion (#18): set while a thread reads qfd[q] and switches what it
   * read, so the encap thread and the decap thread answering a reply never read it at once. */
  int reading[DP_MAX_QUEUES];
};
#define DP_VLAN_IDS 4096

struct dp_vtep {
  bool in_use;
  bool fixed_src;  /* sent to from the receive socket (the underlay port): NAT, conntrack */
  bool match_port; /* its addr key carries the outer UDP port (a spoke behind NAT) */
  uint16_t mtu;    /* path MTU (largest outer IP packet); 0 = unchecked */
  uint8_t encap;
  struct dp_addr addr;
  socklen_t salen;
  struct sockaddr_storage sa; /* destination address and UDP port */
  struct sec_txkey *tx;       /* send key (secure.h), or NULL */
  uint8_t n_rx;               /* receive keys naming this VTEP, their indices in rx_index */
  uint32_t rx_index[DP_SEC_RX_PER_VTEP];
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
  uint8_t sock;  /* index into tx_fd, or DP_SOCK_* */
  uint8_t train;
  uint8_t joinable; /* plain datagrams of `seg` bytes may still join (tx_queue) */
  uint8_t secure;   /* sealed datagrams (DP_SEC_OVERHEAD more per segment) */
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

/* epoll data of an underlay socket in a merged queue's encap set: this bit | its index. */
#define DP_EV_UNDERLAY 0x80000000u
/* Merged queue load, frames and packets per 100 ms window, both directions: merge below
 * DP_MERGE_LOW, split above DP_MERGE_HIGH (or on a full or GRO batch). */
#define DP_MERGE_LOW 200
#define DP_MERGE_HIGH 1000

/* Ports a decap batch remembers having written to (reply_ports). */
#define DP_REPLY_PORTS 4

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
  /* Load (#18): encap, frames its last port read took (read by its queue's decap thread);
   * decap, the TAP ports it wrote to in this batch (reply_ports reads them back). */
  unsigned last_fill;
  bool reply_on;   /* decap: this batch holds the TAP ports it writes to (reply_ports) */
  unsigned nwrote; /* decap: ports held, in wrote[] */
  uint16_t wrote[DP_REPLY_PORTS];
  /* Load (#18, merged queues): frames (ports) and packets (underlay) this thread read in its
   * current 100 ms window (opened at win_ms) and in the last whole one (rate). */
  uint32_t win_ms, win_frames, rate;
  bool mbig[4]; /* encap, merged: its underlay sources' GRO state (decap_batch's `big`) */
  uint32_t tb_window_ms, tb_count; /* EV_TOO_BIG rate: at most TOO_BIG_PER_100MS per 100 ms */
  bool events_queued;
  uint8_t *bufs; /* nbufs * DP_BUF_SIZE, each used from DP_HEADROOM on */
  size_t len[DP_BATCH];
  struct vnet_hdr rd_vh[DP_BATCH]; /* encap: the virtio_net_hdr of each frame read */
  /* encap, packet sockets: the 802.1Q tag the kernel took off each frame (tpid 0: none) */
  uint16_t rd_tpid[DP_BATCH], rd_tci[DP_BATCH];
  union {
    char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
    struct cmsghdr align;
  } rd_aux[DP_BATCH];
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
  /* encrypted tunnels: this thread's EVP contexts; when it last raised EV_ENDPOINT per VTEP */
  struct aead_cache aead;
  uint32_t *endpoint_ms; /* DP_MAX_VTEPS entries; 0 = never */
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
  /* One past the highest tenant, port and VTEP id ever in use (only rise, under the write
   * lock): the loops over them stop there. On this VM kind a read of an untouched page
   * faults in a real one (no shared zero page), so a loop over every possible id made the
   * tables resident, 3.5 MB, with each stats read. */
  uint32_t hi_tenant, hi_port, hi_vtep;
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
  /* One thread per light queue (#18): while queue q is merged (q_merged[q]), its encap
   * thread reads its underlay sockets too (in its epoll set, data DP_EV_UNDERLAY | index)
   * and its decap thread sleeps on q_wake_fd[q] (an eventfd) until the encap thread splits
   * the queue again. merge_on: VTEPD_MERGE is not 0. */
  bool merge_on;
  int q_merged[DP_MAX_QUEUES];
  int q_wake_fd[DP_MAX_QUEUES];
  unsigned q_nsrc[DP_MAX_QUEUES];
  int q_src_fd[DP_MAX_QUEUES][4];
  bool q_src_gre[DP_MAX_QUEUES][4];
  struct dp_evq evq;
  int cpus[DP_MAX_CPUS]; /* underlay.cpus: queue q's threads on cpus[q % ncpus]; ncpus 0: unpinned */
  unsigned ncpus;
  /* Encrypted tunnels (secure.c): receive keys by our index (open addressing, backward-shift
   * removal), the cipher this host seals with, the last key generation given out. */
  struct sec_rxkey **rx_keys; /* DP_SEC_RX_SLOTS */
  unsigned n_rx_keys;
  uint8_t tx_cipher;
  uint64_t key_gen;
  void (*notify)(void *);
  void *notify_arg;
  char err[256];
};

/* tx_fd index meaning "the receive socket": VTEPs with fixed_src (NAT, conntrack). */
#define DP_SOCK_RX DP_MAX_SOURCE_PORTS
/* tx_fd index meaning "the raw GRE socket": GRE-TAP and NVGRE VTEPs. */
#define DP_SOCK_GRE (DP_MAX_SOURCE_PORTS + 1)
/* Flag on a socket index: the other family's set (dual stack). */
#define DP_SOCK_ALT 0x80
_Static_assert(DP_SOCK_GRE < DP_SOCK_ALT, "socket indices leave the ALT bit free");

/* ---- small helpers ---------------------------------------------------------------- */

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

static inline uint8_t *worker_buf(struct dp_worker *w, unsigned i) {
  return w->bufs + (size_t)i * DP_BUF_SIZE + DP_HEADROOM;
}

static inline bool addr_from_sockaddr(const struct sockaddr_storage *ss, struct dp_addr *a, uint16_t *port) {
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

static inline uint32_t addr_hash(const struct dp_addr *a) {
  uint32_t h = a->family;
  for (int i = 0; i < 16; i += 4) h = pkt_hash_mix(h, pkt_load32(a->bytes + i));
  return pkt_hash_final(h);
}

static inline uint32_t vni_hash(uint32_t vni) { return pkt_hash_final(vni + 0x9e3779b9u); }

static inline int af_of(uint8_t family46) { return family46 == 6 ? AF_INET6 : AF_INET; }

/* The fd of the port's queue that this worker serves (queue 0's if the port has fewer). */
static inline int port_fd(const struct dp_port *p, const struct dp_worker *w) {
  if (p->parent) p = &w->dp->ports[p->parent]; /* a VLAN port writes through its trunk */
  return w->queue < p->nq ? p->qfd[w->queue] : p->fd;
}

/* The queue whose fd of port p worker w reads and writes (port_fd): its read exclusion's index. */
static inline unsigned port_queue(const struct dp_port *p, const struct dp_worker *w) {
  return w->queue < p->nq ? w->queue : 0;
}

/* Bytes around an Ethernet frame toward a VTEP: outer IP, then UDP + VXLAN or GRE; a
 * tenant with encryption (secure) adds the transport header and tag (DP_SEC_OVERHEAD). */
static inline size_t vtep_outer_len(const struct dp_vtep *v, bool secure) {
  size_t ip = v->addr.family == 4 ? 20u : 40u;
  return (v->encap == DP_ENCAP_VXLAN ? ip + 8u + VXLAN_HLEN : ip + GRE_HLEN_KEY) + (secure ? DP_SEC_OVERHEAD : 0u);
}

/* The receive key with our index `index`, or NULL (read lock held). */
static inline struct sec_rxkey *rxkey_lookup(const struct dp *dp, uint32_t index) {
  const uint32_t mask = DP_SEC_RX_SLOTS - 1;
  if (!dp->n_rx_keys) return NULL;
  for (uint32_t i = pkt_hash_final(index ^ 0x5bd1e995u) & mask;; i = (i + 1) & mask) {
    struct sec_rxkey *k = dp->rx_keys[i];
    if (!k || k->index == index) return k;
  }
}

/*
 * Push tenant t's tunnel header for `encap` in front of `frame` (DP_TUNNEL_HLEN bytes of
 * headroom) and return the packet's start: through the protocol modules' own push
 * functions (the fuzzed codec is the shipped one), from the templates dpTenantSet built
 * once per tenant; NVGRE's FlowID is patched per frame (the low byte of the flow hash).
 */
static inline uint8_t *tunnel_push(const struct dp_tenant *t, uint8_t encap, uint8_t *frame, uint32_t flow) {
  switch (encap) {
  case DP_ENCAP_GRE:
    return gre_push(frame, &t->gre);
  case DP_ENCAP_NVGRE:
    return nvgre_push(frame, &t->nvgre, (uint8_t)flow);
  default:
    return vxlan_push(frame, &t->vxlan);
  }
}

/* ---- id maps: VNI -> tenantId, outer address -> vtepId (dp_ctl.c keeps them) -------- */

static inline uint32_t vni_lookup(const struct dp *dp, uint32_t vni) {
  const uint32_t mask = VNI_MAP_SLOTS - 1;
  for (uint32_t i = vni_hash(vni) & mask;; i = (i + 1) & mask) {
    uint16_t id = dp->vni_map[i];
    if (!id || dp->tenants[id].vni == vni) return id;
  }
}

static inline uint32_t vtep_lookup(const struct dp *dp, const struct dp_addr *a) {
  const uint32_t mask = ADDR_MAP_SLOTS - 1;
  for (uint32_t i = addr_hash(a) & mask;; i = (i + 1) & mask) {
    uint16_t id = dp->addr_map[i];
    if (!id || memcmp(&dp->vteps[id].addr, a, sizeof *a) == 0) return id;
  }
}

/* ---- dp_events.c ------------------------------------------------------------------- */

/* Queue one record (dp_event_encode); false (counted event_queue_full) if it does not fit. */
bool ev_emit_ex(struct dp_worker *w, uint8_t type, uint8_t in_kind, uint32_t tenant, uint32_t in_id,
                const struct dp_addr *outer, uint16_t outer_port, const uint8_t *frame, size_t frame_len, uint32_t out_id,
                struct dp_io_counters *io);
static inline bool ev_emit(struct dp_worker *w, uint8_t type, uint8_t in_kind, uint32_t tenant, uint32_t in_id,
                           const struct dp_addr *outer, uint16_t outer_port, const uint8_t *frame, size_t frame_len,
                           struct dp_io_counters *io) {
  return ev_emit_ex(w, type, in_kind, tenant, in_id, outer, outer_port, frame, frame_len, 0, io);
}

/* After a batch: one wake-up of the JS thread, however many events the batch queued. */
void worker_notify(struct dp_worker *w);
/* Report a source MAC not cached at this place (at most once per LEARN_SEEN_MS). */
void learn(struct dp_worker *w, uint32_t tenant, const uint8_t *frame, uint8_t in_kind, uint32_t in_id,
           const struct dp_addr *outer, uint16_t outer_port, struct dp_io_counters *io);
/* Broadcast, multicast or unknown unicast: the whole frame goes to TypeScript to flood. */
void punt(struct dp_worker *w, uint32_t tenant, uint8_t in_kind, uint32_t in_id, const struct dp_addr *outer,
          uint16_t outer_port, const uint8_t *frame, size_t len, struct dp_io_counters *io);

/* ---- dp_tx.c: output ------------------------------------------------------------------ */

/* To ports: counted on the port; a frame with a virtio_net_hdr is finished or segmented
 * for a port without one. port_ok: the port is of the tenant (else port_no_tenant). */
bool port_writev(struct dp_worker *w, uint32_t pid, const struct iovec *iov, int niov, size_t len);
ssize_t port_sys_writev(struct dp_worker *w, const struct dp_port *p, const struct iovec *iov, int niov);
void port_tx_count(struct dp_worker *w, uint32_t pid, size_t frame_len);
bool port_write_plain(struct dp_worker *w, uint32_t pid, const uint8_t *frame, size_t len);
bool port_ok(struct dp_worker *w, uint32_t tenant, uint32_t pid, struct dp_io_counters *in_io);
bool port_deliver(struct dp_worker *w, uint32_t tenant, uint32_t pid, const uint8_t *frame, size_t len,
                  struct dp_io_counters *in_io);
void port_deliver_vh(struct dp_worker *w, uint32_t tenant, uint32_t pid, uint8_t *f, size_t len,
                     const struct vnet_hdr *vh, struct dp_io_counters *in_io);
/* A frame from a port to TypeScript (punt), finished or segmented first. */
void punt_vh(struct dp_worker *w, uint32_t tenant, uint32_t pid, uint8_t *f, size_t len, const struct vnet_hdr *vh,
             struct dp_io_counters *io);

/* To the underlay: queue a frame (or a super-frame's segments) toward VTEP vid, encapsulated
 * in place; tx_flush sends the queue; tx_send sends prepared messages on one socket. */
void tx_queue(struct dp_worker *w, const struct dp_tenant *t, uint32_t vid, uint8_t *frame, size_t len);
void tx_queue_gso(struct dp_worker *w, const struct dp_tenant *t, uint32_t vid, uint8_t *f, size_t len,
                  const struct vnet_hdr *vh, struct dp_io_counters *io);
void tx_flush(struct dp_worker *w);
/* Seal one datagram of tenant tid for VTEP vid (plaintext gathered from in[], plen bytes)
 * into out (plen + DP_SEC_OVERHEAD bytes): its length, or 0 when it cannot go (counted:
 * secure_no_key without a usable send key). */
size_t tx_seal(struct dp_worker *w, const struct dp_vtep *v, uint32_t vid, uint32_t tid, const struct iovec *in,
               unsigned nin, size_t plen, uint8_t *out);
unsigned tx_send(struct dp_worker *w, int fd, struct mmsghdr *m, const struct dp_txmsg *d, unsigned n, int wait_ms);

/* A frame over VTEP vid's path MTU: dropped, and quoted to TypeScript (EV_TOO_BIG). */
void too_big(struct dp_worker *w, uint32_t tenant, uint8_t in_kind, uint32_t in_id, const struct dp_addr *outer,
             uint16_t outer_port, const uint8_t *f, size_t len, uint32_t vid, struct dp_io_counters *io);
/* Lower a TCP SYN's MSS option to the tenant's clamp; true if it changed. */
bool mss_clamp(struct dp_worker *w, const struct dp_tenant *t, uint8_t *f, size_t len, bool csum_partial);

/* ---- fastpath.c: the switch ------------------------------------------------------------ */

/* Encap: one frame read from port pid (vh: its virtio_net_hdr, or NULL); one ready port's
 * batch; the thread. */
void encap_frame(struct dp_worker *w, uint32_t pid, const struct dp_port *port, uint8_t *f, size_t len,
                 const struct vnet_hdr *vh);
void encap_port(struct dp_worker *w, uint32_t pid, uint32_t events);
void *encap_main(void *arg);
/* Decap, light load: the TAP ports this batch wrote to (held since: reply_hold in dp_tx.c)
 * read back if `read`, what their stacks answered inside the writes switched on this
 * thread (one hand-off less per round trip), then released. */
void reply_ports(struct dp_worker *w, bool read);
/*
 * Port p's read exclusion for queue q (a futex word: 0 free, 1 held, 2 held and the encap
 * thread waits). The decap thread only tries (port_read_try); the encap thread waits
 * (port_read_wait: asleep, never spinning against a preempted holder).
 */
static inline bool port_read_try(struct dp_port *p, unsigned q) {
  int free_ = 0;
  return !__atomic_load_n(&p->reading[q], __ATOMIC_RELAXED) &&
         __atomic_compare_exchange_n(&p->reading[q], &free_, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
void port_read_wait(struct dp_port *p, unsigned q);
void port_read_done(struct dp_port *p, unsigned q);
/* Decap: received buffer i of the batch, from the UDP socket or from the raw GRE socket;
 * gro_flush writes the super-frame being coalesced; the thread. */
void decap_buffer(struct dp_worker *w, unsigned i);
/*
 * One thread per light queue (#18). queue_sources: queue q's underlay sockets into
 * dp->q_src_fd (its decap thread, at start). queue_merge: the decap thread, light load,
 * hands them to the encap thread's epoll set (DP_EV_UNDERLAY | index) and stops polling
 * them. merged_read: the encap thread reads source i with its own buffers and counters;
 * true if the queue is no longer light (a full or GRO batch). queue_split: the encap
 * thread, under load, takes them out of its set and wakes the decap thread (q_wake_fd).
 */
unsigned queue_sources(struct dp *dp, unsigned q);
void queue_merge(struct dp_worker *w);
bool merged_read(struct dp_worker *w, unsigned i);
void queue_split(struct dp_worker *w);
void decap_gre_packet(struct dp_worker *w, unsigned i);
void gro_flush(struct dp_worker *w);
void *decap_main(void *arg);

/* ---- dp_ctl.c ------------------------------------------------------------------------ */

/* Record why a control call failed (dp_last_error) and return err. */
__attribute__((format(printf, 3, 4))) int dp_fail(struct dp *dp, int err, const char *fmt, ...);

/* ---- secure.c ------------------------------------------------------------------------- */

/* Drop everything a VTEP's keys hold (dp_vtep_del). Write lock held. */
void sec_vtep_forget(struct dp *dp, uint32_t vid);
/* Create: the cipher to seal with (cfg, VTEPD_CIPHER, the CPU) and the key map. */
int sec_init(struct dp *dp, uint8_t cipher, const char **step);
void sec_free(struct dp *dp);

/* ---- dp_stats.c ---------------------------------------------------------------------- */

enum io_kind { IO_PORT, IO_VTEP, IO_TENANT };

/* A new port, VTEP or tenant starts from zero counters in every thread's set. Write lock held. */
void io_reset(struct dp *dp, enum io_kind k, uint32_t id);

#endif
