/*
 * Byte-order, Ethernet helpers and the inner-flow hash. Header-only: everything here runs per packet.
 */
#ifndef VTEPD_PACKET_H
#define VTEPD_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Network byte order (big endian) fields at any alignment. */
static inline uint16_t pkt_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t pkt_get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void pkt_put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void pkt_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

#define PKT_ETH_ALEN 6
#define PKT_ETH_HLEN 14

#define PKT_ETHERTYPE_IPV4 0x0800
#define PKT_ETHERTYPE_IPV6 0x86DD
#define PKT_ETHERTYPE_8021Q 0x8100  /* C-tag */
#define PKT_ETHERTYPE_8021AD 0x88A8 /* S-tag (QinQ) */

struct pkt_eth {
  uint8_t dst[PKT_ETH_ALEN];
  uint8_t src[PKT_ETH_ALEN];
  uint8_t type[2]; /* big endian */
};
_Static_assert(sizeof(struct pkt_eth) == PKT_ETH_HLEN, "Ethernet header is 14 bytes");

/* Group bit: multicast, broadcast included. */
static inline bool eth_is_multicast(const uint8_t *mac) { return (mac[0] & 1) != 0; }

static inline bool eth_is_zero(const uint8_t *mac) {
  return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0;
}

static inline uint16_t eth_type(const uint8_t *frame) {
  return pkt_get16(frame + 12);
}

static inline bool eth_is_vlan_tagged(const uint8_t *frame) {
  uint16_t t = eth_type(frame);
  return t == PKT_ETHERTYPE_8021Q || t == PKT_ETHERTYPE_8021AD;
}

static inline uint64_t eth_mac48(const uint8_t *mac) {
  return (uint64_t)mac[0] << 40 | (uint64_t)mac[1] << 32 | (uint64_t)mac[2] << 24 |
         (uint64_t)mac[3] << 16 | (uint64_t)mac[4] << 8 | (uint64_t)mac[5];
}

static inline void eth_mac_from48(uint8_t *mac, uint64_t v) {
  for (int i = 5; i >= 0; i--, v >>= 8) mac[i] = (uint8_t)v;
}

/* Unaligned load; only its bits feed the hash, so host byte order is fine. */
static inline uint32_t pkt_load32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline uint32_t pkt_rotl32(uint32_t x, int r) { return x << r | x >> (32 - r); }

/* MurmurHash3 block mix and finaliser: a few multiplies, good avalanche, no tables. */
static inline uint32_t pkt_hash_mix(uint32_t h, uint32_t k) {
  k *= 0xcc9e2d51u;
  k = pkt_rotl32(k, 15);
  k *= 0x1b873593u;
  h ^= k;
  h = pkt_rotl32(h, 13);
  return h * 5 + 0xe6546b64u;
}

static inline uint32_t pkt_hash_final(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/*
 * Hash of the inner flow: both MACs, and for IPv4/IPv6 the addresses, the protocol and
 * the TCP/UDP/SCTP ports. It picks the underlay source port, so one flow keeps one
 * outer 5-tuple (no reordering) while many flows spread over ECMP paths (RFC 7348 §5).
 * Frame length never enters the hash. IPv4 fragments hash without ports so every
 * fragment of a datagram takes the same path. `len` must be at least PKT_ETH_HLEN.
 */
static inline uint32_t flow_hash(const uint8_t *frame, size_t len) {
  uint32_t h = 0x9747b28cu;
  h = pkt_hash_mix(h, pkt_load32(frame));
  h = pkt_hash_mix(h, pkt_load32(frame + 4));
  h = pkt_hash_mix(h, pkt_load32(frame + 8));

  uint16_t type = eth_type(frame);
  const uint8_t *l3 = frame + PKT_ETH_HLEN;
  size_t l3len = len - PKT_ETH_HLEN;
  const uint8_t *l4 = NULL;
  uint8_t proto = 0;

  if (type == PKT_ETHERTYPE_IPV4 && l3len >= 20) {
    size_t ihl = (size_t)(l3[0] & 0x0f) * 4;
    bool fragment = (pkt_get16(l3 + 6) & 0x3fff) != 0; /* MF or offset */
    proto = l3[9];
    h = pkt_hash_mix(h, pkt_load32(l3 + 12));
    h = pkt_hash_mix(h, pkt_load32(l3 + 16));
    if (ihl >= 20 && !fragment && l3len >= ihl + 4) l4 = l3 + ihl;
  } else if (type == PKT_ETHERTYPE_IPV6 && l3len >= 40) {
    proto = l3[6]; /* extension headers are not walked: they hash without ports */
    for (size_t off = 8; off < 40; off += 4) h = pkt_hash_mix(h, pkt_load32(l3 + off));
    if (l3len >= 44) l4 = l3 + 40;
  }
  h = pkt_hash_mix(h, (uint32_t)type << 8 | proto);
  if (l4 && (proto == 6 || proto == 17 || proto == 132 || proto == 136))
    h = pkt_hash_mix(h, pkt_load32(l4)); /* source and destination port */
  return pkt_hash_final(h);
}

/* Map a 32-bit hash onto 0..n-1 without a division (Lemire's multiply-shift). */
static inline uint32_t pkt_hash_range(uint32_t hash, uint32_t n) {
  return (uint32_t)(((uint64_t)hash * n) >> 32);
}

#endif
