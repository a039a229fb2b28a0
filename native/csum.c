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

#if defined(__x86_64__)
#include <immintrin.h>

/*
 * AVX2: 32 bytes per round as eight 32-bit lanes, each split into its two 16-bit words
 * (mask and shift) added into 32-bit accumulators: no carries to chase, and a lane cannot
 * overflow before 32768 rounds (1 MB); the caller passes at most 64 KB at a time.
 */
__attribute__((target("avx2"))) static uint64_t csum_avx2(const uint8_t *p, size_t n32) {
  const __m256i mask = _mm256_set1_epi32(0xffff);
  __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
  for (size_t i = 0; i < n32; i++) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(p + 32 * i));
    a = _mm256_add_epi32(a, _mm256_and_si256(v, mask));
    b = _mm256_add_epi32(b, _mm256_srli_epi32(v, 16));
  }
  a = _mm256_add_epi32(a, b); /* < 2^32 per lane: 2 * 32768 * 65535 */
  uint32_t lanes[8];
  _mm256_storeu_si256((__m256i *)lanes, a);
  uint64_t s = 0;
  for (int i = 0; i < 8; i++) s += lanes[i];
  return s;
}

static int have_avx2(void) {
  static int cached = -1;
  if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
  return cached;
}
#endif

uint32_t csum_partial(const void *buf, size_t len, uint32_t sum) {
  const uint8_t *p = buf;
#if defined(__x86_64__)
  if (len >= 128 && have_avx2()) {
    uint64_t s = 0;
    while (len >= 32) {
      size_t n32 = len / 32 > 1024 ? 1024 : len / 32; /* 32 KB per call: lanes never overflow */
      s += csum_avx2(p, n32);
      p += 32 * n32;
      len -= 32 * n32;
    }
    /* fold the 64-bit sum (2^64 = 1 mod 2^16-1 holds for the halves as for the scalar path) */
    uint32_t lo = (uint32_t)s, hi = (uint32_t)(s >> 32);
    sum = csum_add(sum, csum_add(lo, hi));
  }
#endif
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
