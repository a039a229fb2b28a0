/*
 * GRE (RFC 2784) with the key and sequence number extensions (RFC 2890), carrying
 * Ethernet frames (protocol type 0x6558, Transparent Ethernet Bridging): GRE-TAP. And
 * NVGRE (RFC 7637), the same header with a fixed shape. Carried directly in IP
 * (IPv4 protocol / IPv6 next header 47).
 *
 * RFC 2784 §2 with the bits RFC 2890 §2 gives K and S:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |C| |K|S| Reserved0       | Ver |         Protocol Type         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |      Checksum (optional)      |       Reserved1 (Optional)    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                         Key (optional)                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 Sequence Number (Optional)                    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Each optional word is present only when its bit is set (C: checksum + reserved1, K: key,
 * S: sequence number), in that order. What vtepd does with each field on receive:
 *
 *   Ver (bits 13-15)   must be 0 (RFC 2784 §2.3.1; 1 is PPTP's enhanced GRE) -> else drop
 *                      gre_bad_version.
 *   bits 1, 4, 5       RFC 2784 §2.3: "A receiver MUST discard a packet where any of bits
 *                      1-5 are non-zero, unless that receiver implements RFC 1701"; RFC 2890
 *                      then defines bits 2 (K) and 3 (S). So bits 1 (RFC 1701 routing), 4
 *                      (strict source route) and 5 (first recursion bit) -> drop gre_reserved.
 *   bits 6-12          "MUST be sent as zero and MUST be ignored on receipt": ignored.
 *   C + Checksum       RFC 2784 §2.5: the one's complement checksum of the GRE header and
 *                      the payload, computed with the field zero. Verified; a wrong one ->
 *                      drop gre_bad_checksum. Reserved1 is ignored (sent as zero).
 *   K + Key            vtepd needs it: the key names the tenant. Absent -> drop gre_no_key.
 *   S + Sequence       RFC 2890 §2.2: the receiver "MUST" use the sequence number to deliver
 *                      in order and SHOULD discard out-of-sequence packets, which takes
 *                      per-(peer, key) state the fast path does not keep. vtepd never sends
 *                      S and DROPS packets with S set (gre_sequenced) rather than deliver
 *                      them in an order the RFC forbids. The header is still parsed to its
 *                      full length, never misread as payload.
 *   Protocol Type      must be 0x6558 (Ethernet) -> else drop gre_bad_proto.
 *
 * On send, vtepd's header is always 8 bytes: K set, everything else zero, protocol 0x6558,
 * the key. For GRE-TAP the key is the tenant's VNI (as Open vSwitch's options:key=N and
 * Linux's gretap `key N` put N in the key field).
 *
 * NVGRE (RFC 7637 §3.2): C = 0, S = 0, K = 1, protocol 0x6558; the key's upper 24 bits are
 * the Virtual Subnet ID (VSID; 0..0xFFF reserved) and its low 8 bits a FlowID the encapsulator
 * may set for ECMP (vtepd: the inner flow hash; zero if not generated). The inner frame MUST
 * NOT carry an 802.1Q tag, and a decapsulator drops one that does.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |0| |1|0|   Reserved0     | Ver |   Protocol Type 0x6558        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |               Virtual Subnet ID (VSID)        |    FlowID     |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * GRE-TAP and NVGRE look alike on the wire; which one a packet is follows from its key:
 * the caller looks the whole key up among GRE-TAP tenants and key >> 8 among NVGRE tenants
 * (the config refuses a GRE-TAP VNI and an NVGRE VSID that would both claim one key).
 *
 * Everything here is pure: functions over buffers, no I/O, no allocation.
 */
#ifndef VTEPD_GRE_H
#define VTEPD_GRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GRE_HLEN_BASE 4 /* flags/version + protocol type */
#define GRE_HLEN_KEY 8  /* what vtepd sends: base + key */
#define GRE_HLEN_MAX 16 /* base + checksum/reserved1 + key + sequence */

/* First 16-bit word, host order after ntohs; bit 0 of the RFC diagram is 0x8000. */
#define GRE_F_CSUM 0x8000u        /* bit 0: C */
#define GRE_F_KEY 0x2000u         /* bit 2: K (RFC 2890) */
#define GRE_F_SEQ 0x1000u         /* bit 3: S (RFC 2890) */
#define GRE_F_MUST_BE_ZERO 0x4C00u /* bits 1, 4, 5: discard when set (RFC 2784 §2.3) */
#define GRE_F_IGNORED 0x03F8u     /* bits 6-12: reserved, ignored on receipt */
#define GRE_VERSION_MASK 0x0007u  /* bits 13-15 */

#define GRE_PROTO_TEB 0x6558u /* Transparent Ethernet Bridging */
#define IPPROTO_GRE_NUMBER 47

#define NVGRE_VSID_MIN 0x1000u   /* 0..0xFFF reserved (RFC 7637 §3.2) */
#define NVGRE_VSID_MAX 0xFFFFFFu

/* The 8-byte header vtepd sends (K set), byte-wise: no alignment, no swapping on copy. */
struct gre_key_hdr {
  uint8_t flags_ver[2]; /* network order: 0x2000 */
  uint8_t proto[2];     /* network order: 0x6558 */
  uint8_t key[4];       /* network order */
};
_Static_assert(sizeof(struct gre_key_hdr) == GRE_HLEN_KEY, "GRE header with key is 8 bytes");

enum gre_pop_result {
  GRE_OK = 0,
  GRE_TRUNCATED,     /* shorter than 4 bytes, or than the words its flags announce */
  GRE_BAD_VERSION,   /* Ver != 0 */
  GRE_RESERVED,      /* bit 1, 4 or 5 set */
  GRE_BAD_PROTO,     /* protocol type not 0x6558 */
  GRE_BAD_CHECKSUM,  /* C set and the checksum does not verify */
  GRE_SEQUENCED,     /* S set: dropped by policy (see above) */
  GRE_NO_KEY,        /* K clear */
  GRE_NVGRE_FLAGS,   /* NVGRE: C or S set, or K clear */
  GRE_NVGRE_VLAN,    /* NVGRE: the inner frame carries an 802.1Q/802.1ad tag */
  GRE_POP_RESULTS
};

/* What gre_pop parsed; fields beyond the point of a failure are not meaningful. */
struct gre_info {
  uint16_t flags; /* the first word without the version bits */
  uint16_t proto;
  uint32_t key;   /* when flags & GRE_F_KEY */
  uint32_t seq;   /* when flags & GRE_F_SEQ */
  uint32_t hlen;  /* bytes of GRE header: the inner frame starts at pkt + hlen */
};

/* A short stable name per result ("truncated", "bad_version", ...) for tests and logs. */
const char *gre_pop_result_name(enum gre_pop_result r);

/* The RFC 1071 one's complement sum of len bytes (odd length: padded with a zero byte),
 * folded and complemented: what RFC 2784's checksum field holds. */
uint16_t gre_checksum(const uint8_t *p, size_t len);

/* Build a tenant's 8-byte GRE-TAP header once (when the tenant is configured). */
void gre_hdr_build(struct gre_key_hdr *h, uint32_t key);

/* Build an NVGRE header template for a VSID (FlowID 0; nvgre_push fills it per frame). */
void nvgre_hdr_build(struct gre_key_hdr *h, uint32_t vsid);

/*
 * Prepend the 8-byte header in the headroom in front of `frame` and return the new start
 * of the packet (the caller guarantees GRE_HLEN_KEY bytes of headroom).
 */
static inline uint8_t *gre_push(uint8_t *frame, const struct gre_key_hdr *tmpl) {
  uint8_t *p = frame - GRE_HLEN_KEY;
  memcpy(p, tmpl, GRE_HLEN_KEY);
  return p;
}

/* As gre_push, with the key's low byte set to the FlowID (RFC 7637 §3.2: for ECMP). */
static inline uint8_t *nvgre_push(uint8_t *frame, const struct gre_key_hdr *tmpl, uint8_t flow_id) {
  uint8_t *p = gre_push(frame, tmpl);
  p[7] = flow_id;
  return p;
}

/*
 * Validate a received GRE header (the IP payload: pkt points at the GRE header) in the
 * order: length, version, bits 1/4/5, announced length, protocol, checksum, sequence, key.
 * On GRE_OK the inner frame is pkt + info->hlen, len - info->hlen bytes (its own length is
 * the caller's check, inner_runt) and info->key is the key.
 */
enum gre_pop_result gre_pop(const uint8_t *pkt, size_t len, struct gre_info *info);

/*
 * NVGRE receive rules on top of gre_pop: C and S clear and K set (GRE_NVGRE_FLAGS, checked
 * before the checksum would be), then no inner 802.1Q/802.1ad tag (GRE_NVGRE_VLAN; a frame
 * shorter than an Ethernet header is left to the caller). *vsid = key >> 8, *flow_id = the low byte.
 */
enum gre_pop_result nvgre_pop(const uint8_t *pkt, size_t len, struct gre_info *info, uint32_t *vsid,
                              uint8_t *flow_id);

#endif
