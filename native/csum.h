/*
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Sums are kept as 32-bit "partial" sums in host order over 16-bit words loaded in host
 * order. The one's-complement sum is byte-order independent (RFC 1071 §2(B)), so a folded
 * partial stored with memcpy lands in network order: no byte swaps per word. Partials of
 * pieces are combined with csum_add; a piece that starts at an odd offset of the covered
 * data is rotated by 8 first (csum_block_add, as in Linux).
 *
 * csum_partial reads 64 bits at a time into a 128-bit accumulator (add + adc per word, two
 * independent chains), about 8 bytes per cycle: the inner TCP/UDP checksums of every
 * segment cost one pass over the payload and nothing else.
 */
#ifndef VTEPD_CSUM_H
#define VTEPD_CSUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Partial sum of len bytes at p, added to sum. Any alignment, any length. */
uint32_t csum_partial(const void *p, size_t len, uint32_t sum);

/* Add two partial sums (end-around carry). */
static inline uint32_t csum_add(uint32_t a, uint32_t b) {
  a += b;
  return a + (a < b);
}

static inline uint32_t csum_sub(uint32_t a, uint32_t b) { return csum_add(a, ~b); }

/* Fold to 16 bits, not complemented (the value a CHECKSUM_PARTIAL field holds). */
static inline uint16_t csum_fold16(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* Fold and complement: the value stored in a checksum field. */
static inline uint16_t csum_fold(uint32_t sum) { return (uint16_t)~csum_fold16(sum); }

/* A partial of a piece that starts at byte `offset` of the covered data. */
static inline uint32_t csum_block_add(uint32_t sum, uint32_t part, size_t offset) {
  if (offset & 1) part = part >> 8 | part << 24; /* rotate: swaps the bytes of every 16-bit lane */
  return csum_add(sum, part);
}

/* A 16-bit big-endian value (length, protocol) as a partial in the host-order domain. */
static inline uint32_t csum_be16(uint16_t v) {
  uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  uint16_t h;
  memcpy(&h, b, 2);
  return h;
}

/* A 32-bit big-endian value (a TCP sequence number) as a partial. */
static inline uint32_t csum_be32(uint32_t v) { return csum_add(csum_be16((uint16_t)(v >> 16)), csum_be16((uint16_t)v)); }

/* Load/store a 16-bit checksum field exactly as it lies in the packet. */
static inline uint16_t csum_field_get(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}
static inline void csum_field_set(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/*
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 16-bit field that changed from m to m'
 * (both as they lie in the packet, host-order loads). Returns the new field value.
 */
static inline uint16_t csum_replace16(uint16_t check, uint16_t old_v, uint16_t new_v) {
  return csum_fold(csum_add(csum_add((uint16_t)~check, (uint16_t)~old_v), new_v));
}

/* Pseudo-header partials (RFC 793/768, RFC 8200 §8.1); addresses as they lie in the packet. */
uint32_t csum_pseudo4(const uint8_t *saddr, const uint8_t *daddr, uint8_t proto, uint32_t l4len);
uint32_t csum_pseudo6(const uint8_t *saddr, const uint8_t *daddr, uint8_t proto, uint32_t l4len);

/* IPv4 header checksum of a header of ihl_bytes (field at 10 must be zero or is included). */
static inline uint16_t csum_ip4_header(const uint8_t *ip, size_t ihl_bytes) {
  return csum_fold(csum_partial(ip, ihl_bytes, 0));
}

#ifdef __cplusplus
}
#endif

#endif
