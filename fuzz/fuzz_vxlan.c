/*
 * vxlan_pop over arbitrary UDP payloads: never reads past len, accepts exactly the headers
 * RFC 7348 (with Linux's strictness) allows, and what it accepts round-trips through
 * vxlan_hdr_build.
 */
#include <string.h>

#include "ref.h"
#include "vxlan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint32_t vni = 0xdeadbeef;
  enum vxlan_pop_result r = vxlan_pop(data, size, &vni);
  if (size < VXLAN_HLEN) {
    FUZZ_CHECK(r == VXLAN_TRUNCATED, "len %zu gave %d", size, r);
    return 0;
  }
  int valid = data[0] == VXLAN_FLAG_I && !data[1] && !data[2] && !data[3] && !data[7];
  FUZZ_CHECK(r == (valid ? VXLAN_OK : VXLAN_BAD_FLAGS), "result %d, valid %d", r, valid);
  if (r == VXLAN_OK) {
    FUZZ_CHECK(vni <= VXLAN_VNI_MAX, "vni %u", vni);
    struct vxlanhdr h;
    vxlan_hdr_build(&h, vni);
    FUZZ_CHECK(memcmp(&h, data, VXLAN_HLEN) == 0, "template of vni %u differs from the header popped", vni);
  }
  return 0;
}
