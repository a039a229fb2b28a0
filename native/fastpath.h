/*
 * The data path: per-tenant L2 switching between ports (TAP fds) and VTEPs (VXLAN over
 * UDP), driven by an FDB cache that TypeScript programs.
 *
 * Threads: one per direction, per queue (dp_config.queues). The encap thread reads ports
 * (epoll) and switches or encapsulates; the decap thread reads the underlay socket
 * (recvmmsg) and decapsulates and switches. Queue q's pair reads TAP queue q and receive
 * socket q (one SO_REUSEPORT group); the send sockets are shared. Exceptions (a new or
 * moved source MAC, a frame to flood) become event records in a queue that the JS thread
 * drains once per wake-up.
 *
 * Locking: fast-path threads hold the read side of a writer-preferring rwlock for one
 * batch; control calls (all from the JS thread) take the write side briefly. Counters
 * are per thread (each encap and decap, control) and summed on read, so the hot path does
 * no atomic read-modify-write.
 *
 * Control functions return 0 or a positive errno; dp_last_error() then says why.
 */
#ifndef VTEPD_FASTPATH_H
#define VTEPD_FASTPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DP_MAX_TENANTS 4096 /* tenantId 1..4095 */
#define DP_MAX_PORTS 4096   /* portId 1..4095 */
#define DP_MAX_VTEPS 16384  /* vtepId 1..16383 */
/* Entries the FDB cache accepts (ENOSPC beyond); the table has twice as many slots. */
#define DP_FDB_CAPACITY 262144
#define DP_BATCH 32
/* A batch also ends after this many bytes: 64 KB super-frames are handled while in L2. */
#define DP_BATCH_BYTES (256 * 1024)
/* Room in front of every frame for the outer header pushed in place. */
#define DP_HEADROOM 64
/* Per-packet buffer: a 64 KB GSO super-frame (65535 bytes of IP, Ethernet, a tag) fits. */
#define DP_BUF_SIZE (DP_HEADROOM + 65536 + 64)
/* Encap transmit queue: messages, their iovecs, and the arena segment headers (and sealed
 * datagrams of encrypted tenants) are built in. */
#define DP_TX_MSGS 64
#define DP_TX_IOVS 1024
#define DP_TX_ARENA (256 * 1024)
/* Most segments per UDP_SEGMENT send (the kernel's UDP_MAX_SEGMENTS is 64 or more). */
#define DP_GSO_MAX_SEGS 64
/* Largest frame switched: a 9216-byte jumbo payload, Ethernet header and one tag. */
#define DP_MAX_FRAME (9216 + 14 + 4)
#define DP_MAX_SOURCE_PORTS 64
/* Queues (underlay.queues): a thread pair, a TAP queue per port and a receive socket each. */
#define DP_MAX_QUEUES 8
#define DP_MAX_CPUS 64 /* underlay.cpus: at most this many */
#define DP_DEFAULT_SOURCE_PORTS 8
/* Event queue: two halves, producers fill one while the JS thread drains the other. */
#define DP_EVENT_QUEUE_BYTES (4u << 20)

/* Event records: the EVENT layout in src/native/addon.ts. */
#define DP_EVENT_HEADER 56
#define DP_EV_LEARN 1
#define DP_EV_MISS 2
#define DP_EV_CONTROL 3 /* a liveness message (UDP payload 00 56 54 50 ...) from the underlay */
#define DP_EV_TOO_BIG 4 /* a frame too big for its VTEP's path MTU (ICMP feedback) */
/* Encrypted tunnels (native/secure.h). EV_SECURE: a liveness message that came sealed
 * (layout of EV_CONTROL; in_kind IN_VTEP, in_id the key's VTEP, outer the real source).
 * EV_KEY_USED: the first packet that authenticated under a receive key (in_id its VTEP,
 * out_id the index, outer the source), once per key. EV_ENDPOINT: an authenticated packet
 * from another address:port than the VTEP's (in_id the VTEP, outer the new source), at
 * most once per VTEP per 100 ms per thread. None of them carries a source MAC. */
#define DP_EV_SECURE   5
#define DP_EV_KEY_USED 6
#define DP_EV_ENDPOINT 7
/* Bytes of a too-big frame an EV_TOO_BIG carries: what an ICMPv6 error can quote. */
#define DP_TOO_BIG_QUOTE 1294
/* Largest liveness message handed up (a PMTU probe of a jumbo path). */
#define DP_CONTROL_MAX 9216
#define DP_IN_PORT 1
#define DP_IN_VTEP 2
#define DP_IN_UNKNOWN_VTEP 3

#define DP_FDB_PORT 1
#define DP_FDB_VTEP 2

/* Encapsulations: a VTEP has one; a tenant takes a set of them on receive (a bit each). */
#define DP_ENCAP_VXLAN 1 /* UDP, RFC 7348 */
#define DP_ENCAP_GRE 2   /* GRE-TAP: IP proto 47, key = VNI (RFC 2784/2890) */
#define DP_ENCAP_NVGRE 3 /* IP proto 47, key = VSID << 8 | FlowID (RFC 7637) */
#define DP_ENCAP_BIT(e) (1u << (e))

enum dp_counter {
#define C(name, help) DPC_##name,
#define D(name, help) DPC_##name,
#include "counters.def"
#undef C
#undef D
  DPC__COUNT
};

/* Each counter's name, help text and whether it counts a drop (counters.def). */
struct dp_counter_info {
  const char *name;
  const char *help;
  bool drop;
};
extern const struct dp_counter_info dp_counters[DPC__COUNT];

struct dp_io_counters {
  uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes, drops;
};

struct dp_io_stat {
  uint32_t id;
  struct dp_io_counters c;
};

struct dp;

struct dp_config {
  struct sockaddr_storage local; /* address and UDP port the underlay listens on */
  socklen_t local_len;
  unsigned source_ports; /* 1..DP_MAX_SOURCE_PORTS */
  /*
   * Adopt these sockets instead of opening new ones: adopt_fds[0] the receive socket,
   * adopt_fds[1..adopt_n-1] the send sockets (source_ports is then adopt_n - 1). On
   * success the data path owns them (dp_stop closes them, once); on failure they are
   * untouched and stay the caller's.
   */
  const int *adopt_fds;
  unsigned adopt_n;
  bool no_offloads; /* no UDP_SEGMENT, no UDP_GRO (benchmarks, tests of the fallback) */
  /* Open a raw IPPROTO_GRE socket on local's address (GRE-TAP and NVGRE; CAP_NET_RAW). */
  bool gre;
  /*
   * Dual stack: a second underlay address of the other family (local2_len 0: none). It
   * gets its own receive socket on the same UDP port, source_ports send sockets and (with
   * gre) a raw GRE socket; VTEPs of either family are then allowed. Never adopted.
   */
  struct sockaddr_storage local2;
  socklen_t local2_len;
  /*
   * 1 (0 means 1): one encap and one decap thread. 2..DP_MAX_QUEUES: that many pairs; queue
   * q's encap thread reads queue q of every multi-queue port (dp_port_set_queues) and its
   * decap thread reads its own receive socket, all bound with SO_REUSEPORT (the kernel
   * spreads flows by their outer 4-tuple). The raw GRE socket and the second family's
   * sockets stay with queue 0. Not with adopted sockets (EINVAL).
   */
  unsigned queues;
  /* Pin the threads: queue q's encap and decap threads on CPU cpus[q % ncpus] (ncpus 0: not pinned). */
  int cpus[DP_MAX_CPUS];
  unsigned ncpus;
  /*
   * The cipher this host seals with: DP_SEC_AES_GCM (4) or DP_SEC_CHACHA (5, native/secure.h).
   * 0: the environment's VTEPD_CIPHER (aes-256-gcm | chacha20-poly1305; another value is
   * EINVAL), else AES-256-GCM where the CPU has AES instructions, else ChaCha20-Poly1305.
   * Receiving takes both.
   */
  uint8_t cipher;
};

/* Monotonic milliseconds (CLOCK_MONOTONIC), the clock of FDB idle times. */
uint64_t dp_now_ms(void);

/* Open the underlay sockets. 0 or errno, *step naming what failed. */
int dp_create(const struct dp_config *cfg, struct dp **out, const char **step);
/* Stops if needed, then frees. Port fds are never closed. */
void dp_destroy(struct dp *dp);
const char *dp_last_error(const struct dp *dp);

/*
 * Start both threads. notify(arg) is called from them (after a batch that queued
 * events); it must be thread-safe and cheap (uv_async_send). EALREADY, ESHUTDOWN.
 */
int dp_start(struct dp *dp, void (*notify)(void *), void *arg);
/* Join the threads, close the underlay sockets. Idempotent; no restart afterwards. */
void dp_stop(struct dp *dp);
/*
 * The underlay sockets, receive socket first, then the send sockets (room for
 * 1 + DP_MAX_SOURCE_PORTS). Still owned by the data path. 0 once stopped.
 */
unsigned dp_underlay_fds(struct dp *dp, int *fds);
/*
 * Swap the event queue halves and return the one just filled. Single consumer (the JS
 * thread); *data stays valid until the next call.
 */
void dp_events_take(struct dp *dp, const uint8_t **data, size_t *len);

int dp_tenant_set(struct dp *dp, uint32_t tenant, uint32_t vni);
int dp_tenant_del(struct dp *dp, uint32_t tenant);
/* Anti-spoofing: whether the tenant takes encapsulated frames from VTEP `vtep`, or from any
 * source at all. A new tenant accepts nothing until told. */
int dp_tenant_accept(struct dp *dp, uint32_t tenant, uint32_t vtep, bool accept);
int dp_tenant_accept_any(struct dp *dp, uint32_t tenant, bool any);
/* Which encapsulations the tenant takes on receive: DP_ENCAP_BIT()s (a new tenant: VXLAN).
 * GRE-TAP or NVGRE without the data path's GRE socket is ENOPROTOOPT. */
int dp_tenant_encaps(struct dp *dp, uint32_t tenant, unsigned mask);
/*
 * vnet_hdr 1: the fd reads and writes frames behind a virtio_net_hdr (a TAP opened with
 * IFF_VNET_HDR); 0: plain frames; -1: ask the fd (a TAP's flag, else plain). A TAP whose
 * flag disagrees with 0/1 is EINVAL.
 */
int dp_port_set(struct dp *dp, uint32_t port, uint32_t tenant, int fd, int vnet_hdr);
/*
 * A port with one fd per queue (a TAP opened with IFF_MULTI_QUEUE): fds[0] is queue 0's
 * (written to by the JS thread's transmits), fds[q] is read by queue q's encap thread and
 * written to by queue q's decap thread. n is 1..dp's queues; more is EINVAL (a TAP queue
 * nobody reads would stall the flows the kernel steers to it).
 */
int dp_port_set_queues(struct dp *dp, uint32_t port, uint32_t tenant, const int *fds, unsigned n, int vnet_hdr);
int dp_port_del(struct dp *dp, uint32_t port);
/* Trunks (#15): an attached interface carrying tenants by VLAN ID, and each tenant's VLAN port on it. */
int dp_trunk_set(struct dp *dp, uint32_t port, int fd, int vnet_hdr); /* vnet_hdr -1: an AF_PACKET fd has one */
int dp_vlan_port_set(struct dp *dp, uint32_t port, uint32_t tenant, uint32_t trunk, uint32_t vlan);
/* Port 0 in sa means the data path's own UDP port. */
int dp_vtep_set(struct dp *dp, uint32_t vtep, const struct sockaddr_storage *sa, socklen_t len);
/* Per-VTEP options (dp_vtep_set: all zero). */
struct dp_vtep_opts {
  uint16_t mtu;    /* path MTU: largest outer IP packet; 0 = unchecked. Bigger: EV_TOO_BIG */
  bool fixed_src;  /* send from the receive socket (the underlay port): NAT, conntrack */
  bool match_port; /* identified by outer source address AND port (a spoke behind NAT) */
  uint8_t encap;   /* DP_ENCAP_*; 0 = VXLAN. (address, encap) identifies a VTEP */
};
int dp_vtep_set_ex(struct dp *dp, uint32_t vtep, const struct sockaddr_storage *sa, socklen_t len,
                   const struct dp_vtep_opts *opts);
/* Hub relay: VTEP -> VTEP forwarding in the tenant (never back to the ingress VTEP). */
int dp_tenant_relay(struct dp *dp, uint32_t tenant, bool relay);
/* Tagged frames from VTEPs: dropped as inner_vlan (default), or let through (allow). */
int dp_tenant_inner_vlan(struct dp *dp, uint32_t tenant, bool allow);
/* MSS clamping of TCP SYNs (inner IPv4 / IPv6); 0 = off. */
int dp_tenant_mss(struct dp *dp, uint32_t tenant, uint16_t mss4, uint16_t mss6);
/*
 * Send one liveness message to sa, from the receive socket (from_rx) or the first send
 * socket, with DF (df) or without. EMSGSIZE: larger than the local link carries.
 */
int dp_send_control(struct dp *dp, const struct sockaddr_storage *sa, socklen_t len, const uint8_t *payload, size_t n,
                    bool df, bool from_rx);
int dp_vtep_del(struct dp *dp, uint32_t vtep);

/* ---- encrypted tunnels (native/secure.h for the format) ----------------------------- */

/*
 * A receive key under OUR index (nonzero; TypeScript picks it at random) for a session with
 * VTEP `vtep` (must exist, VXLAN). Replacing an index starts its replay window and its
 * EV_KEY_USED afresh. At most DP_SEC_RX_PER_VTEP (3) per VTEP: ENOSPC beyond.
 */
int dp_key_rx_set(struct dp *dp, uint32_t index, uint32_t vtep, const uint8_t key[32]);
/* Absent: not an error. */
int dp_key_rx_del(struct dp *dp, uint32_t index);
/* The VTEP's send key and the peer's index for it; its counter starts at 0. */
int dp_key_tx_set(struct dp *dp, uint32_t vtep, uint32_t remote_index, const uint8_t key[32]);
/* Absent: not an error. Deleting a VTEP deletes its send key and the receive keys naming it. */
int dp_key_tx_del(struct dp *dp, uint32_t vtep);
/*
 * required: the tenant's frames go to a VTEP only sealed with its send key (none: dropped,
 * secure_no_key; never in clear), and plain frames received for it are dropped
 * (plaintext_refused). Off (default): plain VXLAN out, plain and sealed frames in.
 */
int dp_tenant_encrypt(struct dp *dp, uint32_t tenant, bool required);
/*
 * Seal one liveness message with the VTEP's send key and send it to the VTEP from the
 * receive socket, with DF or without. ENOKEY: no send key; EMSGSIZE as dp_send_control.
 */
int dp_send_secure(struct dp *dp, uint32_t vtep, const uint8_t *payload, size_t n, bool df);
/* The cipher this data path seals with: "aes-256-gcm" or "chacha20-poly1305". */
const char *dp_cipher(const struct dp *dp);

int dp_fdb_set(struct dp *dp, uint32_t tenant, const uint8_t mac[6], uint8_t kind, uint32_t id);
/* Absent entry is not an error (port/VTEP/tenant deletion removes entries on its own). */
int dp_fdb_del(struct dp *dp, uint32_t tenant, const uint8_t mac[6]);
/* malloc()ed 16-byte records in *out (free() it), *len bytes. */
int dp_fdb_idle(struct dp *dp, uint8_t **out, size_t *len);

/* Flood/punt path, JS thread. *sent = copies sent. EINVAL, EMSGSIZE, ENOENT, ESHUTDOWN. */
int dp_transmit(struct dp *dp, uint32_t tenant, const uint8_t *frame, size_t len, const uint32_t *ports,
                size_t nports, const uint32_t *vteps, size_t nvteps, uint32_t *sent);

/*
 * Sum the per-thread counters. ports/vteps arrays have room for DP_MAX_PORTS and
 * DP_MAX_VTEPS; only those in use are written.
 */
void dp_stats_read(struct dp *dp, uint64_t counters[DPC__COUNT], struct dp_io_stat *ports, uint32_t *nports,
                   struct dp_io_stat *vteps, uint32_t *nvteps);
/*
 * Per tenant in use (room for DP_MAX_TENANTS): its tunnel traffic. tx: inner frames and
 * bytes sent to VTEPs (as the kernel took them), drops: those it refused; rx: inner frames
 * and bytes received from VTEPs the tenant accepts. Returns how many.
 */
unsigned dp_tenant_stats(struct dp *dp, struct dp_io_stat *tenants);
/* Per queue (room for DP_MAX_QUEUES): frames its threads read from ports (the encap thread,
 * and the decap thread answering a reply), packets its decap thread took from the underlay.
 * Returns the number of queues. */
unsigned dp_queue_stats(struct dp *dp, uint64_t *encap_frames, uint64_t *decap_packets);

/* ---- event records ----------------------------------------------------------------- */

/* What one event record says besides its frame (the EVENT layout of src/native/addon.ts). */
struct dp_event {
  uint8_t type;        /* DP_EV_* */
  uint8_t in_kind;     /* DP_IN_* */
  uint8_t family;      /* of outer_addr: 4 or 6; 0 when none (from a port) */
  uint8_t encap;       /* DP_ENCAP_* it arrived in (from the underlay); else 0 */
  uint16_t outer_port;
  uint32_t tenant_id, in_id;
  uint32_t out_id;     /* EV_TOO_BIG: the VTEP whose path MTU the frame exceeds; else 0 */
  uint8_t outer_addr[16];
};

/* Bytes of the record of an event whose frame is frame_len bytes (8-aligned; an EV_LEARN
 * record carries no frame). */
size_t dp_event_record_len(uint8_t type, size_t frame_len);
/* Encode one record at rec (dp_event_record_len bytes), as the fast path queues it. The
 * source MAC is frame + 6 (at least 12 bytes) for EV_LEARN, EV_MISS and EV_TOO_BIG; the
 * "frame" of EV_CONTROL and EV_SECURE is a UDP payload, EV_KEY_USED and EV_ENDPOINT have none. */
void dp_event_encode(uint8_t *rec, const struct dp_event *ev, const uint8_t *frame, size_t frame_len);

#ifdef __cplusplus
}
#endif

#endif
