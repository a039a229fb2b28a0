/*
 * The encap path of the real fast path (native/fastpath.c: encap_frame -> inner checks ->
 * learn -> FDB -> port-to-port delivery (offloads kept or segmented/finished), VXLAN push
 * and UDP_SEGMENT trains toward a VTEP, or a punt), fed a batch of arbitrary frames with
 * arbitrary virtio_net_hdrs read from the switch's ports (dp_harness.h), then tx_flush as
 * encap_port does. Besides ASan/UBSan, it checks:
 *   - a port only receives frames of its own tenant;
 *   - what reaches VTEP 1 carries VNI 5001 (only tenant 1's FDB points there), what reaches
 *     VTEP 2 VNI 5002 or 0x123456; every datagram has a valid VXLAN header;
 *   - with plain input (no virtio_net_hdr offloads) whatever leaves, to a port or inside a
 *     datagram, is byte for byte a frame of the same tenant that came in;
 *   - punted frames (events) come from the port they were read on, in its tenant.
 *
 * Input: records [1 byte port selector][10 bytes virtio_net_hdr][2 bytes length][frame],
 * up to a batch (32) read from ports; the header is used only on ports that have one.
 */
#include "dp_harness.h"

struct in_frame {
  const uint8_t *f;
  size_t len;
  uint32_t tenant;
};

static struct {
  struct in_frame in[DP_BATCH];
  unsigned n;
  uint32_t allowed;
  int offloads; /* some frame came with GSO or a partial checksum: bytes may differ */
  uint32_t port, vtep;
} S;

static void expect_known(const uint8_t *f, size_t len, uint32_t t, const char *where) {
  if (S.offloads) return;
  bool found = false;
  for (unsigned i = 0; i < S.n && !found; i++) found = S.in[i].tenant == t && S.in[i].len == len && memcmp(S.in[i].f, f, len) == 0;
  FUZZ_CHECK(found, "%s: a %zu-byte frame of tenant %u that no port of the tenant sent", where, len, t);
}

static void on_port_frame(const uint8_t *d, size_t n, void *arg) {
  uint32_t p = S.port, t = h_port_tenant[p];
  struct vnet_hdr vh;
  size_t flen;
  const uint8_t *f = h_port_frame(p, d, n, &flen, &vh);
  FUZZ_CHECK(S.allowed >> t & 1, "port %u (tenant %u) received a frame though no port of its tenant sent one", p, t);
  expect_known(f, flen, t, "port");
}

static void on_datagram(const uint8_t *d, size_t n, void *arg) {
  uint32_t vni = 0;
  FUZZ_CHECK(vxlan_pop(d, n, &vni) == VXLAN_OK, "VTEP %u received a datagram without a valid VXLAN header", S.vtep);
  uint32_t t = h_tenant_of_vni(vni);
  FUZZ_CHECK(S.vtep == 1 ? t == 1 : t == 2 || t == 3, "VTEP %u received VNI %u (tenant %u)", S.vtep, vni, t);
  FUZZ_CHECK(S.allowed >> t & 1, "VTEP %u received tenant %u's frame though no port of it sent one", S.vtep, t);
  FUZZ_CHECK(n >= VXLAN_HLEN + PKT_ETH_HLEN, "runt inner frame");
  expect_known(d + VXLAN_HLEN, n - VXLAN_HLEN, t, "VTEP");
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  h_setup();
  struct dp *dp = H.dp;
  struct dp_worker *w = dp->encap;
  memset(&S, 0, sizeof S);
  w->now_ms = (uint32_t)dp_now_ms();
  size_t pos = 0;
  pthread_rwlock_rdlock(&dp->lock);
  while (S.n < DP_BATCH && size - pos >= 13) {
    uint32_t pid = (in[pos] & 3) + 1;
    struct vnet_hdr vh;
    memcpy(&vh, in + pos + 1, VNET_HDR_LEN);
    size_t len = (size_t)(in[pos + 11] << 8 | in[pos + 12]);
    pos += 13;
    if (len > size - pos) len = size - pos;
    const uint8_t *f = in + pos;
    pos += len;
    uint32_t t = h_port_tenant[pid];
    S.allowed |= 1u << t;
    bool vnet = h_port_vnet[pid];
    if (vnet && (vh.gso_type != VNET_GSO_NONE || (vh.flags & VNET_F_NEEDS_CSUM))) S.offloads = 1;
    S.in[S.n] = (struct in_frame){f, len, t};
    uint8_t *b = worker_buf(w, S.n);
    memcpy(b, f, len);
    if (vnet) memcpy(&w->rd_vh[S.n], &vh, VNET_HDR_LEN);
    /* encap_port: switch each frame read, in order, then flush the sends. */
    encap_frame(w, pid, &dp->ports[pid], b, len, vnet ? &w->rd_vh[S.n] : NULL);
    S.n++;
  }
  tx_flush(w);
  pthread_rwlock_unlock(&dp->lock);

  for (uint32_t p = 1; p <= H_PORTS; p++) {
    S.port = p;
    h_drain(H.port_peer[p], on_port_frame, NULL);
  }
  for (uint32_t v = 1; v <= H_VTEPS; v++) {
    S.vtep = v;
    h_drain(H.vtep_rx[v], on_datagram, NULL);
  }
  h_check_events(S.allowed, 1);
  return 0;
}
