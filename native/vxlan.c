#include "vxlan.h"

void vxlan_hdr_build(struct vxlanhdr *h, uint32_t vni) {
  memset(h, 0, sizeof *h);
  h->flags = VXLAN_FLAG_I;
  h->vni[0] = (uint8_t)(vni >> 16);
  h->vni[1] = (uint8_t)(vni >> 8);
  h->vni[2] = (uint8_t)vni;
}

enum vxlan_pop_result vxlan_pop(const uint8_t *pkt, size_t len, uint32_t *vni) {
  if (len < VXLAN_HLEN) return VXLAN_TRUNCATED;
  const struct vxlanhdr *h = (const struct vxlanhdr *)pkt;
  if (h->flags != VXLAN_FLAG_I || (h->rsvd1[0] | h->rsvd1[1] | h->rsvd1[2] | h->rsvd2) != 0)
    return VXLAN_BAD_FLAGS;
  *vni = (uint32_t)h->vni[0] << 16 | (uint32_t)h->vni[1] << 8 | h->vni[2];
  return VXLAN_OK;
}
