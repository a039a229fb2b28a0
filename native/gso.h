/*
 * Segmentation and coalescing of TCP (and UDP) super-frames, the userspace halves of
 * TSO and GRO. Pure functions over buffers: no I/O, no allocation, no global state, so
 * they can be micro-benchmarked (bench/micro) and fuzzed (test/native/gso.property.test.ts
 * through the addon's testSegment/testCoalesce).
 *
 * A TAP opened with IFF_VNET_HDR prefixes every frame with a virtio_net_hdr (virtio
 * spec 1.2 §5.1.6, <linux/virtio_net.h>), in host byte order on little-endian hosts:
 *
 *     0        1        2       4        6          8           10
 *   +--------+--------+-------+--------+----------+-----------+
 *   | flags  |gso_type|hdr_len|gso_size|csum_start|csum_offset|
 *   +--------+--------+-------+--------+----------+-----------+
 *
 *   flags     NEEDS_CSUM (1): the L4 checksum is partial (the field holds the folded
 *             pseudo-header sum); the sum from csum_start to the end goes into
 *             csum_start + csum_offset. DATA_VALID (2): the checksum was verified.
 *   gso_type  NONE, TCPV4 (1), TCPV6 (4), UDP_L4 (5), | ECN (0x80: CWR set, RFC 3168).
 *   gso_size  payload bytes per segment (the MSS); hdr_len: bytes of headers.
 *
 * Segmenting (TAP -> underlay): a super-frame of up to 64 KB becomes ceil(payload/mss)
 * frames, each with a copy of the headers patched per RFC 791/793/8200: IPv4 total length,
 * identification (+1 per segment), header checksum (incremental, RFC 1624); IPv6 payload
 * length; TCP sequence number (+mss per segment), FIN and PSH on the last segment only,
 * CWR on the first only; and a full TCP (or UDP) checksum over each segment.
 *
 * Coalescing (underlay -> TAP): consecutive in-order segments of one TCP flow (same
 * Ethernet and IP headers but for length/id/checksum, same ports, contiguous sequence
 * numbers, same ACK, window and options, flags equal but PSH/FIN on the last and CWR on
 * the first) become one super-frame with a GSO header: the rules of Linux's tcp_gro_receive.
 * The first segment's headers are patched in place; the other segments' payloads are
 * referenced, not copied: the result is an iovec list for one writev().
 */
#ifndef VTEPD_GSO_H
#define VTEPD_GSO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VNET_HDR_LEN 10
#define VNET_F_NEEDS_CSUM 1
#define VNET_F_DATA_VALID 2
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4
#define VNET_GSO_UDP_L4 5
#define VNET_GSO_ECN 0x80

struct vnet_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
#ifndef __cplusplus
_Static_assert(sizeof(struct vnet_hdr) == VNET_HDR_LEN, "virtio_net_hdr is 10 bytes");
#endif

/* Largest headers (Ethernet + one VLAN tag + IP with options/extensions + TCP with options) handled. */
#define GSO_MAX_HDR 192
/* Largest super-frame: an IPv6 header, 64 KB of payload, Ethernet and one tag. */
#define GSO_MAX_FRAME (18 + 40 + 65535)
/* Most segments one coalesced super-frame takes (an iovec each). */
#define GRO_MAX_SEGS 64

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10
#define TCP_FLAG_URG 0x20
#define TCP_FLAG_ECE 0x40
#define TCP_FLAG_CWR 0x80

enum gso_result {
  GSO_OK = 0,
  GSO_BAD_HEADER,  /* headers truncated, inconsistent, or not what gso_type says */
  GSO_UNSUPPORTED, /* a gso_type or header layout we do not segment */
};

/* Where the headers of a frame lie. */
struct l34 {
  uint16_t l3;      /* IP header offset (14, or 18 behind one 802.1Q tag) */
  uint16_t l4;      /* TCP/UDP header offset */
  uint16_t hdr_len; /* l4 + TCP/UDP header length: where the payload starts */
  uint8_t v6;       /* 0: IPv4, 1: IPv6 */
  uint8_t proto;    /* 6 TCP, 17 UDP */
};

/* What gso_plan learned of a super-frame; input to gso_segment. */
struct gso_plan {
  struct l34 h;
  uint8_t gso_type;   /* VNET_GSO_TCPV4/TCPV6/UDP_L4 without ECN */
  uint16_t mss;       /* payload per segment */
  uint32_t payload;   /* payload bytes of the super-frame */
  uint32_t nseg;      /* segments: ceil(payload / mss) */
  uint32_t seq0;      /* TCP: first sequence number */
  uint8_t flags0;     /* TCP: flags of the super-frame */
  uint16_t id0;       /* IPv4: identification of the first segment */
  uint32_t pseudo;    /* pseudo-header partial without the length */
};

/*
 * Parse an Ethernet frame's IPv4/IPv6 + TCP/UDP headers (no IPv6 extension headers, at
 * most one 802.1Q tag). false if it is not such a frame or is truncated.
 */
bool l34_parse(const uint8_t *frame, size_t len, struct l34 *out);

/*
 * Check a GSO super-frame (vh->gso_type != NONE) and plan its segments.
 * GSO_OK, GSO_BAD_HEADER or GSO_UNSUPPORTED.
 */
enum gso_result gso_plan(const struct vnet_hdr *vh, const uint8_t *frame, size_t len, struct gso_plan *plan);

/* Segment k's payload: frame + plan->h.hdr_len + k * mss, this many bytes. */
static inline uint32_t gso_seg_payload(const struct gso_plan *p, uint32_t k) {
  uint32_t off = k * p->mss;
  return p->payload - off < p->mss ? p->payload - off : p->mss;
}

/*
 * Write the headers (plan->h.hdr_len bytes, checksums final) of segments first ..
 * first+count-1 to hdrs, segment i's at hdrs + (i - first) * slot. Reads the payloads
 * for the L4 checksums. slot >= hdr_len.
 */
void gso_segment(const struct gso_plan *plan, const uint8_t *frame, uint32_t first, uint32_t count, uint8_t *hdrs,
                 size_t slot);

/*
 * Convenience (tests, micro-benchmark): segment a super-frame into whole frames written
 * back to back into out (cap bytes), their lengths into lens (max entries). Returns the
 * number of frames, 0 on error (*err says why: a gso_result, or -1 for no room).
 */
unsigned tcp_segment(const struct vnet_hdr *vh, const uint8_t *frame, size_t len, uint8_t *out, size_t cap,
                     uint32_t *lens, unsigned max, int *err);

/*
 * Finish a CHECKSUM_PARTIAL frame (VNET_F_NEEDS_CSUM, no GSO) in place: sum from
 * csum_start to the end into csum_start + csum_offset (0 becomes 0xffff, as Linux's
 * skb_checksum_help). false if the offsets are outside the frame or csum_start is inside
 * the Ethernet header (a hostile header would rewrite MACs already checked and looked up).
 */
bool csum_finish(const struct vnet_hdr *vh, uint8_t *frame, size_t len);

/* Verify the TCP/UDP checksum of a parsed frame (a UDP checksum of 0 over IPv4 passes). */
bool l4_csum_ok(const uint8_t *frame, size_t len, const struct l34 *h);

/* ---- coalescing ------------------------------------------------------------------- */

struct coalescer {
  uint8_t *first;     /* the first segment: its headers are patched by coalesce_finish */
  size_t first_len;
  struct l34 h;       /* h.proto: 6 TCP, 17 UDP */
  uint16_t mss;       /* payload of the first segment */
  uint32_t next_seq;  /* TCP */
  uint16_t next_id;   /* IPv4: identification expected next (incrementing ids) */
  uint8_t fixed_id;   /* IPv4 with DF: every segment carries the first's id */
  uint8_t closed;     /* a short (TCP: or PSH/FIN) segment was the last one taken */
  uint8_t last_flags; /* TCP: PSH/FIN of the last segment taken */
  uint32_t total;     /* bytes of the super-frame so far */
  unsigned nseg;
  uint8_t saved[GSO_MAX_HDR]; /* the first segment's headers before coalesce_finish patched them */
  /* iov[0]: the caller's virtio_net_hdr; iov[1]: the first frame; iov[2..]: payloads. */
  struct iovec iov[GRO_MAX_SEGS + 1];
};

/*
 * Start a super-frame with a TCP segment carrying payload (IPv4 without options, or IPv6
 * without extension headers; no SYN/RST/URG/FIN/PSH; exact length). false: write it as it
 * is. The frame must stay in place until coalesce_finish.
 */
bool tcp_coalesce_start(struct coalescer *c, uint8_t *frame, size_t len);

/* Append the next TCP segment if it continues the flow; false (nothing changed) otherwise. */
bool tcp_coalesce_add(struct coalescer *c, const uint8_t *frame, size_t len);

/*
 * The same for UDP (a USO super-frame, VNET_GSO_UDP_L4, Linux 6.2): datagrams of one flow
 * (same Ethernet/IP headers but length/id/checksum, same ports) with equal payload sizes,
 * the last one possibly shorter. The receiving stack splits it back into the same
 * datagrams.
 */
bool udp_coalesce_start(struct coalescer *c, uint8_t *frame, size_t len);
bool udp_coalesce_add(struct coalescer *c, const uint8_t *frame, size_t len);

/* tcp_ or udp_coalesce_add, by what the super-frame holds. */
bool coalesce_add(struct coalescer *c, const uint8_t *frame, size_t len);

/*
 * Close the super-frame: with two or more segments, patch the first segment's headers (IP
 * length and checksum; TCP: PSH/FIN of the last; UDP: length; the L4 checksum field as
 * the pseudo-header partial) and fill *vh (NEEDS_CSUM, TCPV4/TCPV6 [+ECN] or UDP_L4,
 * gso_size = mss). With one segment the frame is untouched and *vh is zero. Returns the
 * iovec count of c->iov (iov[0] is set to vh).
 */
unsigned coalesce_finish(struct coalescer *c, struct vnet_hdr *vh);

/* Undo coalesce_finish's patching of the first segment (to write the segments one by one). */
void coalesce_unpatch(struct coalescer *c);

#ifdef __cplusplus
}
#endif

#endif
