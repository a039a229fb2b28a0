/*
 * VXLAN (RFC 7348 §5), carried in UDP (IANA port 4789; Linux's historic default 8472).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |R|R|R|R|I|R|R|R|            Reserved                           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                VXLAN Network Identifier (VNI) |   Reserved    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * I (0x08 in the first byte) MUST be 1; R bits and reserved fields MUST be 0 on send.
 * The RFC says "ignored on receipt", but Linux (vxlan_rcv: unparsed flags or reserved
 * VNI bits -> drop) and VPP drop such packets, so we drop them as well and never send
 * them. The inner Ethernet frame follows the 8 bytes.
 */
#ifndef VTEPD_VXLAN_H
#define VTEPD_VXLAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VXLAN_HLEN 8
#define VXLAN_FLAG_I 0x08
#define VXLAN_VNI_MAX 0xFFFFFFu
#define VXLAN_PORT_IANA 4789

/* Byte-wise so it needs no byte swapping and has no alignment. */
struct vxlanhdr {
  uint8_t flags;    /* exactly VXLAN_FLAG_I */
  uint8_t rsvd1[3]; /* zero */
  uint8_t vni[3];   /* network order */
  uint8_t rsvd2;    /* zero */
};
#ifndef __cplusplus
_Static_assert(sizeof(struct vxlanhdr) == VXLAN_HLEN, "VXLAN header is 8 bytes");
#endif

enum vxlan_pop_result {
  VXLAN_OK = 0,
  VXLAN_TRUNCATED, /* fewer than 8 bytes */
  VXLAN_BAD_FLAGS, /* flags byte != 0x08 or a reserved bit set */
};

#ifdef __cplusplus
extern "C" {
#endif

/* Build the per-tenant header template once (at dpTenantSet); the hot path copies it. */
void vxlan_hdr_build(struct vxlanhdr *h, uint32_t vni);

/*
 * Prepend the 8-byte header in the headroom in front of `frame` and return the new
 * start of the packet. The caller guarantees VXLAN_HLEN bytes of headroom.
 */
static inline uint8_t *vxlan_push(uint8_t *frame, const struct vxlanhdr *tmpl) {
  uint8_t *p = frame - VXLAN_HLEN;
  memcpy(p, tmpl, VXLAN_HLEN);
  return p;
}

/*
 * Validate the header of a received UDP payload and extract the VNI. On VXLAN_OK the
 * inner frame is pkt + VXLAN_HLEN, len - VXLAN_HLEN bytes (its own length is checked by
 * the caller: inner_runt).
 */
enum vxlan_pop_result vxlan_pop(const uint8_t *pkt, size_t len, uint32_t *vni);

#ifdef __cplusplus
}
#endif

#endif
