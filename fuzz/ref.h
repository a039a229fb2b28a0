/*
 * Naive references the fuzz targets compare the optimised routines with: the RFC 1071
 * one's complement sum a byte pair at a time, big endian, as the RFC's own example code.
 */
#ifndef VTEPD_FUZZ_REF_H
#define VTEPD_FUZZ_REF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Sum of len bytes as big-endian 16-bit words (odd tail padded with zero), folded to 16 bits. */
static inline uint16_t ref_sum(const uint8_t *p, size_t len, uint32_t start) {
  uint64_t s = start;
  size_t i = 0;
  for (; i + 1 < len; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (i < len) s += (uint32_t)p[i] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/* A checksum field's bytes (as they lie in the packet) as a big-endian number. */
static inline uint16_t ref_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* One's complement equality: 0x0000 and 0xffff are both zero. */
static inline int ref_ones_eq(uint16_t a, uint16_t b) { return a % 0xffff == b % 0xffff; }

/* Sum of the TCP/UDP pseudo-header (RFC 793 / RFC 8200 §8.1); ip points at the IP header. */
static inline uint32_t ref_pseudo(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4len) {
  uint32_t s = v6 ? ref_sum(ip + 8, 32, 0) : ref_sum(ip + 12, 8, 0);
  s += proto;
  s += l4len >> 16;
  s += l4len & 0xffff;
  return s;
}

/* Does the L4 segment (l4len bytes at l4) carry a correct checksum? (Sum with it == 0xffff.) */
static inline int ref_l4_ok(const uint8_t *ip, int v6, uint8_t proto, const uint8_t *l4, uint32_t l4len) {
  return ref_sum(l4, l4len, ref_pseudo(ip, v6, proto, l4len)) == 0xffff;
}

#define FUZZ_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                  \
      fprintf(stderr, "\n");                                                         \
      abort();                                                                       \
    }                                                                                \
  } while (0)

#endif
