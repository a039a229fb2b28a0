/*
 * The 64-bit-at-a-time Internet checksum (native/csum.c) against the naive RFC 1071 sum:
 * any length, any alignment, any starting partial; combining pieces split at any point
 * (csum_block_add, odd offsets rotated); the RFC 1624 incremental update of a 16-bit field
 * against a full recomputation; the pseudo-header partials.
 *
 * Input: [1 byte alignment][2 bytes split point][4 bytes start partial][2 bytes new field value][data...]
 */
#include <string.h>

#include "csum.h"
#include "ref.h"

/* A folded partial as the big-endian number its bytes make when stored with memcpy. */
static uint16_t as_be(uint32_t partial) {
  uint16_t v = csum_fold16(partial);
  uint8_t b[2];
  memcpy(b, &v, 2);
  return (uint16_t)(b[0] << 8 | b[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  if (size < 9) return 0;
  unsigned align = in[0] & 7;
  size_t split = (size_t)(in[1] << 8 | in[2]);
  uint32_t start;
  memcpy(&start, in + 3, 4);
  uint16_t newv = (uint16_t)(in[7] << 8 | in[8]);
  in += 9;
  size -= 9;

  /* A copy at the chosen misalignment, sized exactly (ASan sees any overread). */
  uint8_t *mem = malloc(size + align + 1);
  uint8_t *p = mem + align;
  memcpy(p, in, size);

  /* Whole buffer, from zero. */
  FUZZ_CHECK(as_be(csum_partial(p, size, 0)) == ref_sum(p, size, 0), "csum_partial over %zu bytes at +%u: %04x, reference %04x", size,
             align, as_be(csum_partial(p, size, 0)), ref_sum(p, size, 0));
  /* With a starting partial: the same as adding it afterwards. */
  FUZZ_CHECK(ref_ones_eq(csum_fold16(csum_partial(p, size, start)), csum_fold16(csum_add(csum_partial(p, size, 0), start))),
             "starting partial %08x", start);
  /* Split into two pieces at any point; the second rotated when it starts at an odd offset. */
  if (size) {
    size_t k = split % (size + 1);
    uint32_t a = csum_partial(p, k, 0), b = csum_partial(p + k, size - k, 0);
    FUZZ_CHECK(ref_ones_eq(csum_fold16(csum_block_add(a, b, k)), csum_fold16(csum_partial(p, size, 0))), "split at %zu of %zu", k, size);
  }
  /* RFC 1624: patch a 16-bit field at an even offset, incrementally vs recomputed. */
  if (size >= 4) {
    size_t at = (split % (size - 1)) & ~(size_t)1;
    uint16_t check = csum_fold(csum_partial(p, size, 0));
    uint16_t old_v;
    memcpy(&old_v, p + at, 2);
    uint8_t nb[2] = {(uint8_t)(newv >> 8), (uint8_t)newv};
    uint16_t new_v;
    memcpy(&new_v, nb, 2);
    memcpy(p + at, &new_v, 2);
    uint16_t inc = csum_replace16(check, old_v, new_v);
    uint16_t full = csum_fold(csum_partial(p, size, 0));
    FUZZ_CHECK(ref_ones_eq(inc, full), "replace at %zu: incremental %04x, full %04x", at, inc, full);
  }
  /* Pseudo-headers against the reference. */
  if (size >= 32) {
    uint32_t l4len = (uint32_t)split * 7 + size;
    uint8_t proto = p[0];
    uint8_t ip6[40] = {0}, ip4[20] = {0};
    memcpy(ip6 + 8, p, 32);
    memcpy(ip4 + 12, p, 8);
    FUZZ_CHECK(ref_ones_eq(as_be(csum_pseudo6(p, p + 16, proto, l4len)), ref_sum((const uint8_t *)"", 0, ref_pseudo(ip6, 1, proto, l4len))), "pseudo6");
    FUZZ_CHECK(ref_ones_eq(as_be(csum_pseudo4(p, p + 4, proto, l4len & 0xffff)), ref_sum((const uint8_t *)"", 0, ref_pseudo(ip4, 0, proto, l4len & 0xffff))), "pseudo4");
  }
  free(mem);
  return 0;
}
