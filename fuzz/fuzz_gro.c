/*
 * Coalescing (native/gso.c: tcp_/udp_coalesce_start, coalesce_add, coalesce_finish,
 * coalesce_unpatch) of arbitrary segment sequences, as the decap thread feeds it: never
 * reads out of bounds; a super-frame it builds has consistent IP lengths and header
 * checksum and a virtio_net_hdr that describes it; when every segment's L4 checksum was
 * good, the finished super-frame's is too; segmenting it again (tcp_segment, what the
 * receiving kernel does) gives back exactly the segments' payloads and TCP sequence
 * numbers (UDP: lengths); and coalesce_unpatch restores the first segment's headers.
 *
 * Input: [1 byte mode][2-byte length + first segment]...
 *   mode bit 0 clear: raw, each further segment is [2-byte length][bytes].
 *   mode bit 0 set:   derived, each further segment is 4 bytes [payload length 2][TCP flags]
 *                     [tweak]: a continuation of the flow built from the first segment's
 *                     headers (TCP: next sequence number; next IPv4 id; valid lengths and
 *                     checksums), with one header byte changed when tweak's bit 7 is set.
 */
#include <string.h>

#include "gso.h"
#include "ref.h"

#define MAX_SEGS 72 /* past GRO_MAX_SEGS (64): the limit is reached */

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* Make lengths and checksums (IPv4 header, TCP or UDP) right for a parsed frame. */
static void seal(uint8_t *f, size_t len, const struct l34 *h) {
  uint8_t *ip = f + h->l3;
  if (!h->v6) {
    put16(ip + 2, (uint16_t)(len - h->l3));
    put16(ip + 10, 0);
    put16(ip + 10, (uint16_t)~ref_sum(ip, (size_t)(h->l4 - h->l3), 0));
  } else {
    put16(ip + 4, (uint16_t)(len - h->l3 - 40));
  }
  uint8_t *l4 = f + h->l4;
  uint32_t l4len = (uint32_t)(len - h->l4);
  size_t co = h->proto == 6 ? 16 : 6;
  if (h->proto == 17) put16(l4 + 4, (uint16_t)l4len);
  put16(l4 + co, 0);
  uint16_t c = (uint16_t)~ref_sum(l4, l4len, ref_pseudo(ip, h->v6, h->proto, l4len));
  put16(l4 + co, h->proto == 17 && c == 0 ? 0xffff : c);
}

/* A TCP or UDP frame whose L4 checksum verifies (an IPv4 UDP checksum of 0 counts as good). */
static int l4_good(const uint8_t *f, size_t len) {
  struct l34 h;
  if (!l34_parse(f, len, &h) || (h.proto != 6 && h.proto != 17)) return 0;
  size_t ip_len = h.v6 ? 40u + be16(f + h.l3 + 4) : be16(f + h.l3 + 2);
  if (h.l3 + ip_len != len) return 0;
  if (h.proto == 17 && !h.v6 && be16(f + h.l4 + 6) == 0) return 1;
  return ref_l4_ok(f + h.l3, h.v6, h.proto, f + h.l4, (uint32_t)(len - h.l4));
}

struct run {
  uint8_t *seg[MAX_SEGS];
  size_t len[MAX_SEGS];
  int csum_ok[MAX_SEGS];
  unsigned n;
};

/* Close the super-frame of segments r->seg[0..n-1] (all taken) and check it. */
static void finish_and_check(struct coalescer *c, struct run *r) {
  struct vnet_hdr vh;
  uint8_t first_hdr[GSO_MAX_HDR];
  size_t hl = c->h.hdr_len;
  memcpy(first_hdr, c->first, hl);
  unsigned niov = coalesce_finish(c, &vh);
  FUZZ_CHECK(c->nseg == r->n && c->nseg >= 1 && c->nseg <= GRO_MAX_SEGS, "nseg %u, taken %u", c->nseg, r->n);
  FUZZ_CHECK(niov == (c->nseg < 2 ? 2 : c->nseg + 1), "niov %u for %u segments", niov, c->nseg);
  FUZZ_CHECK(c->iov[0].iov_base == &vh && c->iov[0].iov_len == VNET_HDR_LEN, "iov[0]");
  size_t total = 0;
  for (unsigned i = 1; i < niov; i++) total += c->iov[i].iov_len;
  FUZZ_CHECK(total == c->total, "iovecs hold %zu bytes, total %u", total, c->total);
  if (c->nseg < 2) {
    static const struct vnet_hdr zero;
    FUZZ_CHECK(memcmp(&vh, &zero, sizeof vh) == 0 && memcmp(first_hdr, c->first, hl) == 0, "a single segment must stay untouched");
    return;
  }
  uint8_t *sf = malloc(total);
  size_t off = 0;
  for (unsigned i = 1; i < niov; i++) {
    memcpy(sf + off, c->iov[i].iov_base, c->iov[i].iov_len);
    off += c->iov[i].iov_len;
  }
  const struct l34 *h = &c->h;
  const uint8_t *ip = sf + h->l3;
  FUZZ_CHECK(total - h->l3 <= 65535 + (h->v6 ? 40 : 0), "super-frame of %zu bytes", total);
  if (!h->v6) {
    FUZZ_CHECK(be16(ip + 2) == total - h->l3, "IPv4 total length");
    FUZZ_CHECK(ref_sum(ip, 20, 0) == 0xffff, "IPv4 header checksum");
  } else {
    FUZZ_CHECK(be16(ip + 4) == total - h->l3 - 40, "IPv6 payload length");
  }
  const int tcp = h->proto == 6;
  FUZZ_CHECK(vh.flags == VNET_F_NEEDS_CSUM && vh.csum_start == h->l4 && vh.csum_offset == (tcp ? 16 : 6) && vh.hdr_len == hl, "vnet hdr");
  FUZZ_CHECK(vh.gso_size == r->len[0] - hl, "gso_size %u, first payload %zu", vh.gso_size, r->len[0] - hl);
  if (tcp) FUZZ_CHECK((vh.gso_type & ~VNET_GSO_ECN) == (h->v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4), "gso_type %u", vh.gso_type);
  else FUZZ_CHECK(vh.gso_type == VNET_GSO_UDP_L4 && be16(sf + h->l4 + 4) == total - h->l4, "UDP super-frame: gso_type %u", vh.gso_type);
  int all_ok = 1;
  for (unsigned i = 0; i < r->n; i++) all_ok &= r->csum_ok[i];
  if (all_ok) {
    uint8_t *g = malloc(total);
    memcpy(g, sf, total);
    FUZZ_CHECK(csum_finish(&vh, g, total), "csum_finish of the super-frame");
    FUZZ_CHECK(ref_l4_ok(g + h->l3, h->v6, h->proto, g + h->l4, (uint32_t)(total - h->l4)), "super-frame of good segments has a bad L4 checksum once finished");
    free(g);
  }
  /* The receiving kernel's view: segment it again. */
  uint32_t lens[GRO_MAX_SEGS + 1];
  size_t cap = total + (size_t)c->nseg * hl;
  uint8_t *out = malloc(cap);
  int err = 0;
  unsigned n = tcp_segment(&vh, sf, total, out, cap, lens, GRO_MAX_SEGS + 1, &err);
  FUZZ_CHECK(n == c->nseg && err == 0, "re-segmenting gave %u (err %d), coalesced %u", n, err, c->nseg);
  off = 0;
  for (unsigned i = 0; i < n; i++) {
    const uint8_t *s = out + off;
    const uint8_t *o = i == 0 ? first_hdr : r->seg[i]; /* the first's headers as they went in (finish patches them) */
    FUZZ_CHECK(lens[i] == r->len[i], "segment %u: %u bytes, went in with %zu", i, lens[i], r->len[i]);
    FUZZ_CHECK(memcmp(s + hl, r->seg[i] + hl, lens[i] - hl) == 0, "segment %u payload", i);
    FUZZ_CHECK(memcmp(s + h->l4, o + h->l4, 4) == 0, "segment %u ports", i);
    if (tcp) FUZZ_CHECK(memcmp(s + h->l4 + 4, o + h->l4 + 4, 12) == 0, "segment %u sequence number/ack/flags/window", i);
    else FUZZ_CHECK(memcmp(s + h->l4 + 4, o + h->l4 + 4, 2) == 0, "segment %u UDP length", i);
    off += lens[i];
  }
  free(out);
  free(sf);
  coalesce_unpatch(c);
  FUZZ_CHECK(memcmp(c->first, first_hdr, hl) == 0, "coalesce_unpatch left the first segment's headers changed");
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  if (size < 3) return 0;
  uint8_t mode = in[0];
  size_t pos = 1;
  struct run r = {.n = 0};
  uint8_t *all[MAX_SEGS];
  unsigned nall = 0;

  size_t l0 = be16(in + pos);
  pos += 2;
  if (l0 > size - pos) l0 = size - pos;
  uint8_t *first = malloc(l0 ? l0 : 1);
  memcpy(first, in + pos, l0);
  pos += l0;
  all[nall++] = first;
  struct l34 h0;
  int derived = (mode & 1) && l34_parse(first, l0, &h0) && (h0.proto == 6 || h0.proto == 17);
  if (derived) seal(first, l0, &h0);

  struct coalescer c;
  bool active = tcp_coalesce_start(&c, first, l0) || udp_coalesce_start(&c, first, l0);
  if (active) {
    r.seg[0] = first;
    r.len[0] = l0;
    r.csum_ok[0] = l4_good(first, l0);
    r.n = 1;
  }
  uint32_t seq = derived && h0.proto == 6 ? be32(first + h0.l4 + 4) + (uint32_t)(l0 - h0.hdr_len) : 0;
  uint16_t id = derived && !h0.v6 ? be16(first + h0.l3 + 4) : 0;

  while (pos < size && nall < MAX_SEGS) {
    uint8_t *f;
    size_t len;
    if (derived) {
      if (size - pos < 4) break;
      size_t plen = be16(in + pos) % 1600;
      uint8_t flags = in[pos + 2], tweak = in[pos + 3];
      pos += 4;
      len = h0.hdr_len + plen;
      f = malloc(len ? len : 1);
      memcpy(f, first, h0.hdr_len); /* the first's headers (already patched if it was finished) */
      for (size_t k = 0; k < plen; k++) f[h0.hdr_len + k] = (uint8_t)(seq + k * 31 + tweak);
      if (h0.proto == 6) {
        put32(f + h0.l4 + 4, seq);
        f[h0.l4 + 13] = flags;
      }
      if (!h0.v6) put16(f + h0.l3 + 4, (uint16_t)++id);
      if (tweak & 0x80) f[(tweak & 0x7f) % h0.hdr_len] ^= 1;
      seal(f, len, &h0);
      seq += (uint32_t)plen;
    } else {
      if (size - pos < 2) break;
      len = be16(in + pos);
      pos += 2;
      if (len > size - pos) len = size - pos;
      f = malloc(len ? len : 1);
      memcpy(f, in + pos, len);
      pos += len;
    }
    all[nall++] = f;
    if (active && r.n < MAX_SEGS && coalesce_add(&c, f, len)) {
      r.seg[r.n] = f;
      r.len[r.n] = len;
      r.csum_ok[r.n] = l4_good(f, len);
      r.n++;
      continue;
    }
    if (active) finish_and_check(&c, &r);
    active = tcp_coalesce_start(&c, f, len) || udp_coalesce_start(&c, f, len);
    r.n = 0;
    if (active) {
      r.seg[0] = f;
      r.len[0] = len;
      r.csum_ok[0] = l4_good(f, len);
      r.n = 1;
    }
  }
  if (active) finish_and_check(&c, &r);
  for (unsigned i = 0; i < nall; i++) free(all[i]);
  return 0;
}
