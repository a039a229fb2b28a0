/*
 * The encrypted transport's receive path (native/secure.h; native/fastpath.c: decap_secure
 * -> receive key by index -> replay pre-check -> open in place -> replay window -> events,
 * liveness or VXLAN) on the real fast path, with the switch of dp_harness.h and keys
 * installed through the control API:
 *
 *   tenant 1 (VNI 5001) requires encryption; VTEP 1 has receive key K1 under index 0x1001,
 *   VTEP 2 K2 under 0x2002; both have send keys.
 *
 * Input: records [1 byte ctl][2 bytes len][data], up to a batch. ctl bits 0-1: the outer
 * source (0 127.0.0.2, 1 127.0.0.3, 2 an unknown address); bit 2: seal (else data is the
 * UDP payload as it is): data = [2 bytes counter][plaintext], sealed by this harness with
 * its own EVP calls (not the addon's) under K1/index 0x1001 (bit 4 clear) or K2/0x2002;
 * bit 3: a UDP GRO buffer of 1 + (ctl >> 5 & 3) such datagrams (consecutive counters);
 * bit 7: flip one bit of the sealed datagram (its position from the counter). Besides
 * ASan/UBSan it checks:
 *   - a port of tenant 1 only receives frames when the batch had a datagram sealed under
 *     K1 (VTEP 1, the only one tenant 1 accepts) carrying VNI 5001: no plaintext gets in;
 *   - every event record is well formed (dp_harness.h), key and endpoint events only
 *     from VTEPs and only when something was sealed with a right key.
 */
#include <openssl/evp.h>

#include "dp_harness.h"

#define IDX1 0x1001u
#define IDX2 0x2002u

static const uint8_t K1[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                               17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t K2[32] = {0xa5};

static bool keys_set;

static void setup_keys(void) {
  if (keys_set) return;
  keys_set = true;
  int e;
  if ((e = dp_tenant_encrypt(H.dp, 1, true)) || (e = dp_key_rx_set(H.dp, IDX1, 1, K1)) ||
      (e = dp_key_rx_set(H.dp, IDX2, 2, K2)) || (e = dp_key_tx_set(H.dp, 1, 0x77, K1)) ||
      (e = dp_key_tx_set(H.dp, 2, 0x88, K2)))
    h_die(dp_last_error(H.dp), e);
}

/* Seal p with Node-independent EVP calls: header || ciphertext || tag, into out. */
static size_t seal(uint8_t type, const uint8_t *key, uint32_t index, uint64_t counter, const uint8_t *p, size_t n,
                   uint8_t *out) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  const EVP_CIPHER *c = type == DP_SEC_AES_GCM ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
  uint8_t nonce[12] = {0};
  out[0] = type;
  out[1] = out[2] = out[3] = 0;
  for (int i = 0; i < 4; i++) out[4 + i] = (uint8_t)(index >> (8 * i));
  for (int i = 0; i < 8; i++) out[8 + i] = nonce[4 + i] = (uint8_t)(counter >> (8 * i));
  int l = 0, l2 = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx, c, NULL, key, nonce) != 1 || EVP_EncryptUpdate(ctx, NULL, &l, out, 16) != 1 ||
      EVP_EncryptUpdate(ctx, out + 16, &l, p, (int)n) != 1 || EVP_EncryptFinal_ex(ctx, out + 16 + l, &l2) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + 16 + n) != 1)
    h_die("EVP seal", EIO);
  EVP_CIPHER_CTX_free(ctx);
  return 16 + n + 16;
}

static uint32_t allowed;

static void on_port_frame(const uint8_t *d, size_t n, void *arg) {
  uint32_t p = *(uint32_t *)arg;
  uint32_t t = h_port_tenant[p];
  FUZZ_CHECK(t != 1 || (allowed & 2), "port %u of the encrypted tenant got a frame without a sealed datagram for it",
             p);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  h_setup();
  setup_keys();
  struct dp *dp = H.dp;
  struct dp_worker *w = dp->decap;
  w->now_ms = (uint32_t)dp_now_ms();
  allowed = ~2u; /* every tenant but 1, unless a datagram sealed under K1 carries its VNI */
  size_t pos = 0;
  unsigned n = 0;
  while (n < DP_BATCH && size - pos >= 3) {
    uint8_t ctl = in[pos];
    size_t len = (size_t)(in[pos + 1] << 8 | in[pos + 2]);
    pos += 3;
    if (len > size - pos) len = size - pos;
    const uint8_t *data = in + pos;
    pos += len;
    uint8_t *b = w->rx_iov[n].iov_base;
    size_t blen = 0, seg = 0;
    if ((ctl & 4) && len >= 2) {
      const bool k1 = !(ctl & 0x10);
      const uint64_t ctr = (uint64_t)(data[0] << 8 | data[1]);
      const uint8_t *p = data + 2;
      const size_t plen = len - 2 < 9000 ? len - 2 : 9000;
      const unsigned reps = ctl & 8 ? 1 + (ctl >> 5 & 3) : 1;
      for (unsigned r = 0; r < reps; r++)
        blen += seal(ctl & 0x40 ? DP_SEC_CHACHA : DP_SEC_AES_GCM, k1 ? K1 : K2, k1 ? IDX1 : IDX2, ctr + r, p, plen,
                     b + blen);
      if (ctl & 0x80) b[ctr % blen] ^= (uint8_t)(1u << (ctr & 7));
      /* A flipped bit spoils one datagram; a GRO buffer's other segments stay genuine. */
      if ((!(ctl & 0x80) || reps > 1) && k1 && plen >= VXLAN_HLEN && p[0] == 0x08 &&
          (p[4] << 16 | p[5] << 8 | p[6]) == (int)h_vni[1])
        allowed |= 2;
      if (reps > 1) seg = blen / reps;
    } else {
      memcpy(b, data, len);
      blen = len;
    }
    struct mmsghdr *m = &w->rx[n];
    m->msg_len = (unsigned)blen;
    m->msg_hdr.msg_flags = 0;
    struct sockaddr_storage *ss = &w->rx_name[n];
    socklen_t sl;
    uint32_t src = ctl & 3;
    h_sockaddr(src == 0 ? "127.0.0.2" : src == 1 ? "127.0.0.3" : "127.0.0.9", 4789, ss, &sl);
    m->msg_hdr.msg_namelen = sizeof *ss;
    m->msg_hdr.msg_controllen = 0;
    if (seg) {
      struct cmsghdr *cm = (struct cmsghdr *)w->rx_cmsg[n].buf;
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_GRO;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      int v = (int)seg;
      memcpy(CMSG_DATA(cm), &v, sizeof v);
      m->msg_hdr.msg_control = w->rx_cmsg[n].buf;
      m->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(int));
    }
    n++;
  }
  pthread_rwlock_rdlock(&dp->lock);
  for (unsigned i = 0; i < n; i++) decap_buffer(w, i);
  tx_flush(w);
  gro_flush(w);
  pthread_rwlock_unlock(&dp->lock);

  for (uint32_t p = 1; p <= H_PORTS; p++) h_drain(H.port_peer[p], on_port_frame, &p);
  for (uint32_t v = 1; v <= H_VTEPS; v++) {
    /* What went to the VTEPs (a relay, none here): drained so the sockets never fill. */
    while (recv(H.vtep_rx[v], H.buf, DP_BUF_SIZE, MSG_DONTWAIT) > 0) {}
  }
  h_check_events(~0u, 0);
  return 0;
}
