/*
 * gre_pop and nvgre_pop over arbitrary IP payloads: never read past len; what they accept
 * obeys RFC 2784/2890/7637 as gre.h states it; gre_checksum agrees with the naive sum; a
 * header built by gre_hdr_build/nvgre_hdr_build pops back to its key.
 */
#include <string.h>

#include "gre.h"
#include "ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct gre_info info;
  enum gre_pop_result r = gre_pop(data, size, &info);
  FUZZ_CHECK((unsigned)r < GRE_POP_RESULTS, "result %d", r);
  FUZZ_CHECK(strcmp(gre_pop_result_name(r), "?") != 0, "unnamed result %d", r);
  if (size < 4) FUZZ_CHECK(r == GRE_TRUNCATED, "len %zu gave %s", size, gre_pop_result_name(r));
  if (r == GRE_OK) {
    uint16_t w0 = ref_be16(data);
    FUZZ_CHECK(info.hlen <= size && info.hlen >= GRE_HLEN_KEY && info.hlen <= GRE_HLEN_MAX, "hlen %u of %zu", info.hlen, size);
    FUZZ_CHECK((w0 & GRE_VERSION_MASK) == 0 && !(w0 & GRE_F_MUST_BE_ZERO) && (w0 & GRE_F_KEY) && !(w0 & GRE_F_SEQ), "flags %04x accepted", w0);
    FUZZ_CHECK(ref_be16(data + 2) == GRE_PROTO_TEB, "protocol %04x accepted", ref_be16(data + 2));
    size_t koff = 4 + (w0 & GRE_F_CSUM ? 4 : 0);
    uint32_t key = (uint32_t)data[koff] << 24 | (uint32_t)data[koff + 1] << 16 | (uint32_t)data[koff + 2] << 8 | data[koff + 3];
    FUZZ_CHECK(info.key == key, "key %08x, header says %08x", info.key, key);
    if (w0 & GRE_F_CSUM) FUZZ_CHECK(ref_sum(data, size, 0) == 0xffff, "a bad checksum passed");
  }
  /* The checksum routine against the reference (any length, any alignment). */
  FUZZ_CHECK(gre_checksum(data, size) == (uint16_t)~ref_sum(data, size, 0), "gre_checksum differs over %zu bytes", size);

  uint32_t vsid = 0xdeadbeef;
  uint8_t flow = 0;
  enum gre_pop_result n = nvgre_pop(data, size, &info, &vsid, &flow);
  FUZZ_CHECK((unsigned)n < GRE_POP_RESULTS, "nvgre result %d", n);
  if (n == GRE_OK) {
    uint16_t w0 = ref_be16(data);
    FUZZ_CHECK((w0 & (GRE_F_CSUM | GRE_F_SEQ | GRE_F_KEY)) == GRE_F_KEY && info.hlen == GRE_HLEN_KEY, "NVGRE flags %04x accepted", w0);
    FUZZ_CHECK(vsid == (info.key >> 8) && flow == (uint8_t)info.key && vsid <= NVGRE_VSID_MAX, "vsid %x flow %x key %x", vsid, flow, info.key);
    if (size >= GRE_HLEN_KEY + 14) {
      uint16_t type = ref_be16(data + GRE_HLEN_KEY + 12);
      FUZZ_CHECK(type != 0x8100 && type != 0x88A8, "an inner VLAN tag passed NVGRE");
    }
  }
  if (r != GRE_OK && n == GRE_OK) FUZZ_CHECK(0, "nvgre_pop accepted what gre_pop refused (%s)", gre_pop_result_name(r));

  /* Round trip of the headers vtepd sends, with the input as key and inner frame. */
  if (size >= 4) {
    uint32_t key = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
    uint8_t *pkt = malloc(GRE_HLEN_KEY + size - 4);
    struct gre_key_hdr h;
    gre_hdr_build(&h, key);
    memcpy(pkt, &h, GRE_HLEN_KEY);
    memcpy(pkt + GRE_HLEN_KEY, data + 4, size - 4);
    FUZZ_CHECK(gre_pop(pkt, GRE_HLEN_KEY + size - 4, &info) == GRE_OK && info.key == key && info.hlen == GRE_HLEN_KEY, "GRE-TAP template of key %08x", key);
    nvgre_hdr_build(&h, key >> 8);
    uint8_t *p = nvgre_push(pkt + GRE_HLEN_KEY, &h, (uint8_t)key);
    FUZZ_CHECK(p == pkt, "nvgre_push start");
    enum gre_pop_result q = nvgre_pop(pkt, GRE_HLEN_KEY + size - 4, &info, &vsid, &flow);
    FUZZ_CHECK(q == GRE_OK || q == GRE_NVGRE_VLAN, "NVGRE template of vsid %06x: %s", key >> 8, gre_pop_result_name(q));
    if (q == GRE_OK) FUZZ_CHECK(vsid == key >> 8 && flow == (uint8_t)key, "NVGRE round trip");
    free(pkt);
  }
  return 0;
}
