/*
 * Segmentation (native/gso.c) of a super-frame with an arbitrary virtio_net_hdr, as a TAP
 * hands it over: gso_plan must refuse what it cannot segment and never read out of bounds;
 * what it accepts must segment into frames that are each valid on their own (IP lengths
 * and header checksums, TCP sequence numbers and flags, L4 checksums checked against the
 * naive reference) and whose payloads concatenate to the original. Also csum_finish
 * (CHECKSUM_PARTIAL) and l34_parse + l4_csum_ok (the decap path's checksum check) against
 * the reference.
 *
 * Input: [1 byte fix-ups][10 bytes virtio_net_hdr, host order][Ethernet frame]. The fix-ups
 * (bit 0: make the IP length match, bit 1: point csum_start/offset at the L4 checksum and
 * set NEEDS_CSUM) let the fuzzer reach the segmenting code often; with 0 the input is raw.
 */
#include <string.h>

#include "gso.h"
#include "ref.h"

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static void fixup(uint8_t fix, struct vnet_hdr *vh, uint8_t *f, size_t len) {
  if (len < 14) return;
  size_t l3 = 14;
  if (be16(f + 12) == 0x8100 && len >= 18) l3 = 18;
  if (len < l3 + 20) return;
  int v6 = f[l3] >> 4 == 6;
  size_t l4 = v6 ? l3 + 40 : l3 + (size_t)(f[l3] & 15) * 4;
  if (fix & 1) {
    if (v6 && len >= l3 + 40) put_be16(f + l3 + 4, (uint16_t)(len - l3 - 40));
    else if (!v6) put_be16(f + l3 + 2, (uint16_t)(len - l3));
  }
  if (fix & 2) {
    uint8_t type = vh->gso_type & (uint8_t)~VNET_GSO_ECN;
    vh->flags |= VNET_F_NEEDS_CSUM;
    vh->csum_start = (uint16_t)l4;
    vh->csum_offset = type == VNET_GSO_UDP_L4 ? 6 : 16;
  }
}

/* Check one segment (a whole frame) of plan p: segment i of n. */
static void check_segment(const struct gso_plan *p, const uint8_t *seg, size_t len, uint32_t i, const uint8_t *orig) {
  const struct l34 *h = &p->h;
  const uint8_t *ip = seg + h->l3;
  uint32_t plen = gso_seg_payload(p, i);
  FUZZ_CHECK(len == (size_t)h->hdr_len + plen, "segment %u length %zu", i, len);
  FUZZ_CHECK(memcmp(seg, orig, h->l3) == 0, "segment %u link header changed", i);
  if (!h->v6) {
    size_t ihl = (size_t)(h->l4 - h->l3);
    FUZZ_CHECK(be16(ip + 2) == len - h->l3, "segment %u IPv4 total length %u, frame %zu", i, be16(ip + 2), len);
    FUZZ_CHECK(ref_sum(ip, ihl, 0) == 0xffff, "segment %u IPv4 header checksum", i);
    FUZZ_CHECK(be16(ip + 4) == (uint16_t)(p->id0 + i), "segment %u IPv4 id", i);
  } else {
    FUZZ_CHECK(be16(ip + 4) == len - h->l3 - 40, "segment %u IPv6 payload length", i);
  }
  const uint8_t *l4 = seg + h->l4;
  uint32_t l4len = (uint32_t)(len - h->l4);
  FUZZ_CHECK(ref_l4_ok(ip, h->v6, h->proto, l4, l4len), "segment %u of %u: bad L4 checksum (proto %u, v6 %u, l4len %u)", i, p->nseg, h->proto, h->v6, l4len);
  if (h->proto == 6) {
    FUZZ_CHECK(be32(l4 + 4) == p->seq0 + i * (uint32_t)p->mss, "segment %u sequence number", i);
    uint8_t fl = l4[13];
    if (i + 1 < p->nseg) FUZZ_CHECK(!(fl & (TCP_FLAG_FIN | TCP_FLAG_PSH)), "FIN/PSH on segment %u of %u", i, p->nseg);
    if (i > 0) FUZZ_CHECK(!(fl & TCP_FLAG_CWR), "CWR on segment %u", i);
  } else {
    FUZZ_CHECK(be16(l4 + 4) == l4len, "segment %u UDP length", i);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  if (size < 1 + VNET_HDR_LEN) return 0;
  uint8_t fix = in[0];
  struct vnet_hdr vh;
  memcpy(&vh, in + 1, VNET_HDR_LEN);
  size_t len = size - 1 - VNET_HDR_LEN;
  uint8_t *f = malloc(len ? len : 1);
  memcpy(f, in + 1 + VNET_HDR_LEN, len);
  fixup(fix, &vh, f, len);

  /* The decap path's check on any frame: l4_csum_ok agrees with the reference. */
  struct l34 h;
  if (l34_parse(f, len, &h)) {
    FUZZ_CHECK(h.hdr_len <= len && h.l4 < h.hdr_len && h.l3 < h.l4, "l34 %u %u %u of %zu", h.l3, h.l4, h.hdr_len, len);
    size_t ip_len = h.v6 ? 40u + be16(f + h.l3 + 4) : be16(f + h.l3 + 2);
    int ok = l4_csum_ok(f, len, &h);
    int want;
    if (h.l3 + ip_len > len || h.l3 + ip_len < h.hdr_len) want = 0;
    else if (!h.v6 && h.proto == 17 && be16(f + h.l4 + 6) == 0) want = 1;
    else want = ref_l4_ok(f + h.l3, h.v6, h.proto, f + h.l4, (uint32_t)(h.l3 + ip_len - h.l4));
    FUZZ_CHECK(ok == want, "l4_csum_ok %d, reference %d", ok, want);
  }

  /* CHECKSUM_PARTIAL finished in place. */
  if (vh.flags & VNET_F_NEEDS_CSUM) {
    uint8_t *g = malloc(len ? len : 1);
    memcpy(g, f, len);
    size_t start = vh.csum_start, at = start + vh.csum_offset;
    bool done = csum_finish(&vh, g, len);
    FUZZ_CHECK(done == (start >= 14 && start < len && at + 2 <= len), "csum_finish %d for start %zu at %zu len %zu", done, start, at, len);
    if (done) {
      uint16_t want = (uint16_t)~ref_sum(f + start, len - start, 0);
      FUZZ_CHECK(be16(g + at) == (want ? want : 0xffff), "csum_finish wrote %04x, reference %04x", be16(g + at), want);
    }
    free(g);
  }

  struct gso_plan p;
  enum gso_result r = gso_plan(&vh, f, len, &p);
  if (r == GSO_OK) {
    FUZZ_CHECK(p.h.hdr_len <= GSO_MAX_HDR && p.h.hdr_len < len && p.mss == vh.gso_size && p.mss > 0, "plan");
    FUZZ_CHECK(p.payload == len - p.h.hdr_len && p.nseg == (p.payload + p.mss - 1) / p.mss, "plan: %u segments for %u bytes", p.nseg, p.payload);
    if (p.nseg <= 4096) {
      size_t cap = (size_t)p.nseg * p.h.hdr_len + p.payload;
      uint8_t *out = malloc(cap);
      uint32_t *lens = malloc(p.nseg * sizeof *lens);
      int err = 0;
      unsigned n = tcp_segment(&vh, f, len, out, cap, lens, p.nseg, &err);
      FUZZ_CHECK(n == p.nseg && err == 0, "tcp_segment: %u of %u, err %d", n, p.nseg, err);
      size_t off = 0;
      for (unsigned i = 0; i < n; i++) {
        check_segment(&p, out + off, lens[i], i, f);
        FUZZ_CHECK(memcmp(out + off + p.h.hdr_len, f + p.h.hdr_len + (size_t)i * p.mss, lens[i] - p.h.hdr_len) == 0, "payload %u", i);
        off += lens[i];
      }
      FUZZ_CHECK(off == cap, "segments fill %zu of %zu", off, cap);
      /* Too little room is refused, not overrun. */
      if (cap > 0) FUZZ_CHECK(tcp_segment(&vh, f, len, out, cap - 1, lens, p.nseg, &err) == 0 && err == -1, "short buffer");
      free(out);
      free(lens);
    } else {
      /* Huge segment counts (tiny mss): the first and the last segment, as the encap thread writes them. */
      uint32_t idx[2] = {0, p.nseg - 1};
      for (int k = 0; k < 2; k++) {
        uint32_t i = idx[k], plen = gso_seg_payload(&p, i);
        uint8_t *seg = malloc(p.h.hdr_len + plen);
        gso_segment(&p, f, i, 1, seg, p.h.hdr_len);
        memcpy(seg + p.h.hdr_len, f + p.h.hdr_len + (size_t)i * p.mss, plen);
        check_segment(&p, seg, p.h.hdr_len + plen, i, f);
        free(seg);
      }
    }
  } else {
    FUZZ_CHECK(r == GSO_BAD_HEADER || r == GSO_UNSUPPORTED, "result %d", r);
  }
  free(f);
  return 0;
}
