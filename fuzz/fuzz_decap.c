/*
 * The decap path of the real fast path (native/fastpath.c: decap_buffer -> vxlan_pop ->
 * VNI -> anti-spoofing -> inner checks -> learn/FDB -> port write, GRO splitting and TCP
 * coalescing), fed a batch of arbitrary underlay datagrams from chosen sources, with the
 * switch of dp_harness.h. Besides ASan/UBSan, it checks the isolation promise:
 *   - a port only ever receives frames of its own tenant, and only from datagrams whose
 *     VNI is that tenant's and whose source the tenant accepts (anti-spoofing);
 *   - a plain frame a port receives is byte for byte an inner frame that was sent to it;
 *   - no event names another tenant or carries a multicast/zero source;
 *   - a TCP or UDP super-frame splits back into inner frames that came in, and when the
 *     kernel did not verify them (no UDP GRO) each had a good checksum: it is written with
 *     NEEDS_CSUM, which the receiving stack takes as verified.
 *
 * Input: records [1 byte ctl][2 bytes GRO segment size][2 bytes length][datagram], up to
 * a batch (32). ctl bits 0-1: the outer source (0 127.0.0.2, 1 127.0.0.3, 2 an unknown
 * address, 3 not an IP address); bit 2: MSG_TRUNC; bit 3: a UDP_GRO cmsg with the segment
 * size; bit 4: a packet of the raw GRE socket instead ([outer IPv4 header][GRE][frame],
 * through decap_gre_packet: GRE-TAP key 7 is tenant 4, NVGRE VSID 0x123456 tenant 3).
 */
#include "dp_harness.h"

#define MAX_INNER 4096

struct inner {
  const uint8_t *f;
  size_t len;
  uint32_t tenant;
};

struct exec_state {
  struct inner in[MAX_INNER];
  unsigned n;
  uint32_t allowed; /* bit t: tenant t may receive something */
  int trusted;      /* some buffer came through UDP GRO (inner checksums not verified) */
  uint32_t port;
};

static struct exec_state S;

/* What the harness expects of one datagram: its tenant if it may be delivered. */
static void note_datagram(const uint8_t *p, size_t len, uint32_t vid) {
  uint32_t vni;
  if (vxlan_pop(p, len, &vni) != VXLAN_OK) return;
  uint32_t t = h_tenant_of_vni(vni);
  if (!t || !h_accepts(t, vid) || len < VXLAN_HLEN + PKT_ETH_HLEN) return;
  S.allowed |= 1u << t;
  if (S.n < MAX_INNER) S.in[S.n++] = (struct inner){p + VXLAN_HLEN, len - VXLAN_HLEN, t};
}

/* The same for a packet of the raw GRE socket (from 127.0.0.2 or .3, or src 2: elsewhere). */
static void note_gre(const uint8_t *p, size_t len, uint32_t src) {
  size_t off, plen;
  struct gre_info info;
  if (!H.gre || rawip_payload(AF_INET, p, len, &off, &plen) != 0 || gre_pop(p + off, plen, &info) != GRE_OK) return;
  uint32_t t = 0, vid = 0;
  if (info.key == h_vni[4]) {
    t = 4;
    vid = src == 0 ? 3 : 0; /* the GRE-TAP VTEP is 127.0.0.2 */
  } else if (info.key >> 8 == h_vni[3] && !(info.flags & GRE_F_CSUM)) {
    t = 3;
    vid = src == 1 ? 4 : 0; /* the NVGRE VTEP is 127.0.0.3 */
  }
  if (!t || !h_accepts(t, vid) || plen < info.hlen + PKT_ETH_HLEN) return;
  S.allowed |= 1u << t;
  if (S.n < MAX_INNER) S.in[S.n++] = (struct inner){p + off + info.hlen, plen - info.hlen, t};
}

static void on_port_frame(const uint8_t *d, size_t n, void *arg) {
  uint32_t p = S.port, t = h_port_tenant[p];
  if (getenv("FUZZ_DEBUG")) fprintf(stderr, "port %u (tenant %u): %zu bytes\n", p, t, n);
  struct vnet_hdr vh;
  size_t flen;
  const uint8_t *f = h_port_frame(p, d, n, &flen, &vh);
  FUZZ_CHECK(S.allowed >> t & 1, "port %u (tenant %u) received a frame no datagram of its tenant carried (allowed %x)", p, t, S.allowed);
  FUZZ_CHECK(!eth_is_vlan_tagged(f), "port %u received a VLAN-tagged frame", p);
  FUZZ_CHECK(!eth_is_multicast(f + 6) && !eth_is_zero(f + 6), "port %u received a frame with a multicast or zero source", p);
  if (vh.gso_type == VNET_GSO_NONE) {
    FUZZ_CHECK(vh.flags == 0, "plain frame with flags %u", vh.flags);
    bool found = S.n >= MAX_INNER;
    for (unsigned i = 0; i < S.n && !found; i++)
      found = S.in[i].tenant == t && S.in[i].len == flen && memcmp(S.in[i].f, f, flen) == 0;
    FUZZ_CHECK(found, "port %u received a %zu-byte frame that is no inner frame of its tenant", p, flen);
    return;
  }
  /* A coalesced TCP (or UDP) super-frame: what the receiving kernel splits it into must be
   * segments that came in, each with a good checksum unless the kernel had verified the
   * outer datagram (UDP GRO). */
  struct l34 h;
  FUZZ_CHECK(l34_parse(f, flen, &h) && (h.proto == 6 || h.proto == 17), "coalesced frame does not parse");
  FUZZ_CHECK(vh.flags == VNET_F_NEEDS_CSUM && vh.csum_start == h.l4 && vh.csum_offset == (h.proto == 6 ? 16 : 6) && vh.hdr_len == h.hdr_len,
             "coalesced frame's vnet hdr");
  uint32_t lens[GRO_MAX_SEGS + 1];
  size_t cap = flen + (GRO_MAX_SEGS + 1) * (size_t)h.hdr_len;
  uint8_t *out = malloc(cap);
  int err = 0;
  unsigned nseg = tcp_segment(&vh, f, flen, out, cap, lens, GRO_MAX_SEGS + 1, &err);
  FUZZ_CHECK(nseg >= 2 && err == 0, "coalesced frame re-segments into %u (err %d)", nseg, err);
  size_t off = 0, co = h.proto == 6 ? 16 : 6;
  size_t addr = h.v6 ? 8 : 12, alen = h.v6 ? 32 : 8; /* the pseudo-header's addresses */
  for (unsigned k = 0; k < nseg; k++) {
    const uint8_t *seg = out + off;
    size_t l4len = lens[k] - h.l4;
    /* All of L4 but the checksum, and the TCP urgent pointer (URG is never coalesced;
     * without it the field means nothing and Linux's GRO ignores it too); the same
     * addresses. Several inner frames may match (equal copies): one with a good checksum
     * is enough. */
    size_t skip = h.proto == 6 ? 4 : 2;
    bool matched = false, good = false;
    for (unsigned i = 0; i < S.n && !good; i++) {
      const struct inner *x = &S.in[i];
      if (x->tenant != t || x->len != lens[k] || memcmp(x->f + h.l3 + addr, seg + h.l3 + addr, alen) != 0 ||
          memcmp(x->f + h.l4, seg + h.l4, co) != 0 || memcmp(x->f + h.l4 + co + skip, seg + h.l4 + co + skip, l4len - co - skip) != 0)
        continue;
      matched = true;
      good = (h.proto == 17 && !h.v6 && (x->f[h.l4 + 6] | x->f[h.l4 + 7]) == 0) ||
             ref_l4_ok(x->f + h.l3, h.v6, h.proto, x->f + h.l4, (uint32_t)l4len);
    }
    FUZZ_CHECK(matched || S.n >= MAX_INNER, "port %u: segment %u of a coalesced frame is no datagram's inner frame", p, k);
    FUZZ_CHECK(good || !matched || S.trusted, "port %u: a segment with a bad checksum was coalesced (and would be taken as verified)", p);
    off += lens[k];
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  h_setup();
  struct dp *dp = H.dp;
  struct dp_worker *w = dp->decap;
  memset(&S, 0, sizeof S);
  w->now_ms = (uint32_t)dp_now_ms();
  size_t pos = 0;
  unsigned n = 0;
  bool gre[DP_BATCH];
  while (n < DP_BATCH && size - pos >= 5) {
    uint8_t ctl = in[pos];
    uint16_t gro = (uint16_t)(in[pos + 1] << 8 | in[pos + 2]);
    size_t len = (size_t)(in[pos + 3] << 8 | in[pos + 4]);
    pos += 5;
    if (len > size - pos) len = size - pos;
    const uint8_t *pkt = in + pos;
    pos += len;

    struct mmsghdr *m = &w->rx[n];
    memcpy(w->rx_iov[n].iov_base, pkt, len);
    m->msg_len = (unsigned)len;
    m->msg_hdr.msg_flags = ctl & 4 ? MSG_TRUNC : 0;
    struct sockaddr_storage *ss = &w->rx_name[n];
    socklen_t sl;
    uint32_t src = ctl & 3, vid = src == 0 ? 1 : src == 1 ? 2 : 0;
    if (src == 3) {
      memset(ss, 0, sizeof *ss);
      ss->ss_family = AF_UNIX;
    } else {
      h_sockaddr(src == 2 ? "127.0.0.9" : h_vtep_addr[vid], (uint16_t)(49152 + gro % 16384), ss, &sl);
    }
    m->msg_hdr.msg_namelen = sizeof *ss;
    m->msg_hdr.msg_controllen = 0;
    if (ctl & 8) {
      struct cmsghdr *cm = (struct cmsghdr *)w->rx_cmsg[n].buf;
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_GRO;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      int v = gro;
      memcpy(CMSG_DATA(cm), &v, sizeof v);
      m->msg_hdr.msg_control = w->rx_cmsg[n].buf;
      m->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(int));
    }
    gre[n] = (ctl & 0x10) != 0;
    /* What decap_buffer will see: the datagram, or the datagrams of a GRO buffer. */
    if (gre[n]) {
      if (src != 3 && !(ctl & 4)) note_gre(pkt, len, src);
    } else if (src != 3 && !(ctl & 4)) {
      size_t seg = ctl & 8 ? gro : 0;
      if (seg == 0 || seg >= len) {
        note_datagram(pkt, len, vid);
      } else {
        S.trusted = 1;
        for (size_t off = 0; off < len; off += seg) note_datagram(pkt + off, len - off < seg ? len - off : seg, vid);
      }
    }
    n++;
  }
  /* decap_batch, after recvmmsg returned n (one socket's batch: UDP or raw GRE). */
  pthread_rwlock_rdlock(&dp->lock);
  for (unsigned i = 0; i < n; i++) {
    if (gre[i]) decap_gre_packet(w, i);
    else decap_buffer(w, i);
  }
  tx_flush(w);
  gro_flush(w);
  pthread_rwlock_unlock(&dp->lock);

  for (uint32_t p = 1; p <= H_PORTS; p++) {
    S.port = p;
    h_drain(H.port_peer[p], on_port_frame, NULL);
  }
  h_check_events(S.allowed, 0);
  return 0;
}
