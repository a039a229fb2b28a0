#include "csum.h"

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* 128 -> 32 bits, end-around carry at each step (one's-complement is mod 2^16-1, and
 * 2^32 = 2^64 = 1 mod 2^16-1, so folding halves keeps the sum). */
static inline uint32_t fold128(unsigned __int128 acc) {
  uint64_t lo = (uint64_t)acc, hi = (uint64_t)(acc >> 64);
  uint64_t s = lo + hi;
  s += s < lo;
  uint32_t a = (uint32_t)s, b = (uint32_t)(s >> 32);
  return csum_add(a, b);
}

uint32_t csum_partial(const void *buf, size_t len, uint32_t sum) {
  const uint8_t *p = buf;
  unsigned __int128 a0 = 0, a1 = 0;
  /* Two independent add/adc chains, 32 bytes per round. */
  while (len >= 32) {
    a0 += load64(p);
    a1 += load64(p + 8);
    a0 += load64(p + 16);
    a1 += load64(p + 24);
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    a0 += load64(p);
    p += 8;
    len -= 8;
  }
  if (len) {
    /* The tail as a zero-padded 64-bit word: the bytes keep their lane positions. */
    uint64_t t = 0;
    memcpy(&t, p, len);
    a1 += t;
  }
  return csum_add(fold128(a0 + a1), sum); /* each < 2^80: no overflow */
}

uint32_t csum_pseudo4(const uint8_t *saddr, const uint8_t *daddr, uint8_t proto, uint32_t l4len) {
  uint32_t s = csum_partial(saddr, 4, 0);
  s = csum_add(s, csum_partial(daddr, 4, 0));
  s = csum_add(s, csum_be16(proto));
  return csum_add(s, csum_be16((uint16_t)l4len));
}

uint32_t csum_pseudo6(const uint8_t *saddr, const uint8_t *daddr, uint8_t proto, uint32_t l4len) {
  uint32_t s = csum_partial(saddr, 16, 0);
  s = csum_add(s, csum_partial(daddr, 16, 0));
  s = csum_add(s, csum_be32(l4len));
  return csum_add(s, csum_be16(proto));
}
