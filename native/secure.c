/*
 * Encrypted tunnels (format and tables: secure.h): the AEAD through OpenSSL's EVP, the
 * replay window, the key tables and their control calls (JS thread, write lock), and the
 * sealed liveness send. The fast path's use of them is in fastpath.c (open) and dp_tx.c
 * (seal).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include <openssl/evp.h>

#include "dp_private.h"

/* ---- ciphers ------------------------------------------------------------------------- */

static pthread_once_t ciphers_once = PTHREAD_ONCE_INIT;
static const EVP_CIPHER *cipher_gcm, *cipher_chacha;

/* Fetched once (OpenSSL 3: no provider lookup per init); the built-in objects otherwise. */
static void ciphers_fetch(void) {
  cipher_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  if (!cipher_gcm) cipher_gcm = EVP_aes_256_gcm();
  cipher_chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  if (!cipher_chacha) cipher_chacha = EVP_chacha20_poly1305();
}

static const EVP_CIPHER *cipher_of(uint8_t type) {
  pthread_once(&ciphers_once, ciphers_fetch);
  return type == DP_SEC_AES_GCM ? cipher_gcm : type == DP_SEC_CHACHA ? cipher_chacha : NULL;
}

uint8_t sec_cipher_auto(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul")) return DP_SEC_AES_GCM;
#elif defined(__aarch64__)
  if (getauxval(AT_HWCAP) & (1ul << 3) /* HWCAP_AES */) return DP_SEC_AES_GCM;
#endif
  return DP_SEC_CHACHA;
}

const char *sec_cipher_name(uint8_t type) {
  return type == DP_SEC_AES_GCM ? "aes-256-gcm" : type == DP_SEC_CHACHA ? "chacha20-poly1305" : "none";
}

uint8_t sec_cipher_parse(const char *name) {
  if (!name) return 0;
  if (strcmp(name, "aes-256-gcm") == 0) return DP_SEC_AES_GCM;
  if (strcmp(name, "chacha20-poly1305") == 0) return DP_SEC_CHACHA;
  return 0;
}

/* ---- AEAD ------------------------------------------------------------------------------- */

/* This thread's context for (key generation, cipher, direction): re-keyed only on a miss. */
static EVP_CIPHER_CTX *aead_ctx(struct aead_cache *c, uint8_t type, const uint8_t *key, uint64_t gen, bool enc) {
  struct aead_slot *s = &c->s[(gen * 4 + (unsigned)enc * 2 + (type & 1)) & (AEAD_SLOTS - 1)];
  if (s->ctx && s->gen == gen && s->type == type && s->enc == enc) return s->ctx;
  const EVP_CIPHER *cipher = cipher_of(type);
  if (!cipher) return NULL;
  if (!s->ctx && !(s->ctx = EVP_CIPHER_CTX_new())) return NULL;
  s->gen = 0;
  if (EVP_CipherInit_ex(s->ctx, cipher, NULL, key, NULL, enc) != 1) return NULL;
  s->gen = gen;
  s->type = type;
  s->enc = enc;
  return s->ctx;
}

/* Nonce: 4 zero bytes, then the header's counter (8 bytes little endian, as on the wire). */
static inline void nonce_of(const uint8_t *h, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  memcpy(nonce + 4, h + 8, 8);
}

bool aead_seal(struct aead_cache *c, uint8_t type, const uint8_t *key, uint64_t gen, const uint8_t *h,
               const struct iovec *in, unsigned nin, uint8_t *out) {
  EVP_CIPHER_CTX *ctx = aead_ctx(c, type, key, gen, true);
  if (!ctx) return false;
  uint8_t nonce[12];
  nonce_of(h, nonce);
  int l = 0;
  size_t o = 0;
  if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 1) != 1 || EVP_CipherUpdate(ctx, NULL, &l, h, DP_SEC_HLEN) != 1)
    goto fail;
  for (unsigned i = 0; i < nin; i++) {
    if (!in[i].iov_len) continue;
    if (EVP_CipherUpdate(ctx, out + o, &l, in[i].iov_base, (int)in[i].iov_len) != 1) goto fail;
    o += (size_t)l;
  }
  if (EVP_CipherFinal_ex(ctx, out + o, &l) != 1) goto fail;
  o += (size_t)l;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, DP_SEC_TAGLEN, out + o) != 1) goto fail;
  return true;
fail:
  c->s[(gen * 4 + 2 + (type & 1)) & (AEAD_SLOTS - 1)].gen = 0; /* start it afresh next time */
  return false;
}

int aead_open(struct aead_cache *c, uint8_t type, const uint8_t *key, uint64_t gen, const uint8_t *h, const uint8_t *ct,
              size_t len, uint8_t *out) {
  if (len < DP_SEC_TAGLEN) return 0;
  EVP_CIPHER_CTX *ctx = aead_ctx(c, type, key, gen, false);
  if (!ctx) return -1;
  uint8_t nonce[12];
  nonce_of(h, nonce);
  const size_t n = len - DP_SEC_TAGLEN;
  uint8_t tag[DP_SEC_TAGLEN];
  memcpy(tag, ct + n, DP_SEC_TAGLEN);
  int l = 0, r;
  if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 0) != 1 || EVP_CipherUpdate(ctx, NULL, &l, h, DP_SEC_HLEN) != 1 ||
      (n && EVP_CipherUpdate(ctx, out, &l, ct, (int)n) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, DP_SEC_TAGLEN, tag) != 1) {
    r = 0;
  } else {
    r = EVP_CipherFinal_ex(ctx, out + (n ? (size_t)l : 0), &l) == 1;
  }
  return r;
}

void aead_cache_free(struct aead_cache *c) {
  for (unsigned i = 0; i < AEAD_SLOTS; i++) {
    EVP_CIPHER_CTX_free(c->s[i].ctx); /* cleanses the key schedule */
    c->s[i].ctx = NULL;
    c->s[i].gen = 0;
  }
}

/* ---- replay window (RFC 6479, as WireGuard's counter_validate) -------------------------- */

#define WINDOW (DP_SEC_WINDOW_BITS - 64)

bool sec_replay_precheck(const struct sec_rxkey *k, uint64_t counter) {
  if (counter >= DP_SEC_REJECT_AFTER) return false;
  const uint64_t c = counter + 1, top = __atomic_load_n(&k->top, __ATOMIC_RELAXED);
  if (c + WINDOW < top) return false;
  if (c > top) return true;
  const uint64_t word = __atomic_load_n(&k->ring[(c >> 6) & (DP_SEC_WINDOW_WORDS - 1)], __ATOMIC_RELAXED);
  return !(word >> (c & 63) & 1);
}

bool sec_replay_update(struct sec_rxkey *k, uint64_t counter) {
  if (counter >= DP_SEC_REJECT_AFTER) return false;
  const uint64_t c = counter + 1; /* 1-based: top 0 means nothing seen yet */
  bool ok = false;
  pthread_spin_lock(&k->lock);
  if (c + WINDOW >= k->top) {
    const uint64_t index = c >> 6;
    if (c > k->top) {
      const uint64_t cur = k->top >> 6;
      uint64_t n = index - cur;
      if (n > DP_SEC_WINDOW_WORDS) n = DP_SEC_WINDOW_WORDS;
      for (uint64_t i = 1; i <= n; i++)
        __atomic_store_n(&k->ring[(cur + i) & (DP_SEC_WINDOW_WORDS - 1)], 0, __ATOMIC_RELAXED);
      __atomic_store_n(&k->top, c, __ATOMIC_RELAXED);
    }
    uint64_t *w = &k->ring[index & (DP_SEC_WINDOW_WORDS - 1)];
    const uint64_t bit = 1ull << (c & 63);
    ok = !(*w & bit);
    __atomic_store_n(w, *w | bit, __ATOMIC_RELAXED);
  }
  pthread_spin_unlock(&k->lock);
  return ok;
}

void sec_replay_reset(struct sec_rxkey *k) {
  pthread_spin_lock(&k->lock);
  k->top = 0;
  memset(k->ring, 0, sizeof k->ring);
  pthread_spin_unlock(&k->lock);
}

/* ---- key tables ------------------------------------------------------------------------ */

static inline uint32_t rx_home(uint32_t index) { return pkt_hash_final(index ^ 0x5bd1e995u) & (DP_SEC_RX_SLOTS - 1); }

static void rxkey_free(struct sec_rxkey *k) {
  if (!k) return;
  pthread_spin_destroy(&k->lock);
  explicit_bzero(k->key, sizeof k->key);
  free(k);
}

static void txkey_free(struct sec_txkey *k) {
  if (!k) return;
  explicit_bzero(k->key, sizeof k->key);
  free(k);
}

static void rxmap_insert(struct dp *dp, struct sec_rxkey *k) {
  uint32_t i = rx_home(k->index);
  while (dp->rx_keys[i]) i = (i + 1) & (DP_SEC_RX_SLOTS - 1);
  dp->rx_keys[i] = k;
  dp->n_rx_keys++;
}

/* Backward-shift removal (as the id maps); returns the key taken out, or NULL. */
static struct sec_rxkey *rxmap_remove(struct dp *dp, uint32_t index) {
  const uint32_t mask = DP_SEC_RX_SLOTS - 1;
  uint32_t hole = rx_home(index);
  while (dp->rx_keys[hole] && dp->rx_keys[hole]->index != index) hole = (hole + 1) & mask;
  struct sec_rxkey *k = dp->rx_keys[hole];
  if (!k) return NULL;
  for (uint32_t j = (hole + 1) & mask; dp->rx_keys[j]; j = (j + 1) & mask) {
    uint32_t h = rx_home(dp->rx_keys[j]->index);
    bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
    if (stays) continue;
    dp->rx_keys[hole] = dp->rx_keys[j];
    hole = j;
  }
  dp->rx_keys[hole] = NULL;
  dp->n_rx_keys--;
  return k;
}

static void vtep_rx_unlink(struct dp_vtep *v, uint32_t index) {
  for (unsigned i = 0; i < v->n_rx; i++) {
    if (v->rx_index[i] != index) continue;
    v->rx_index[i] = v->rx_index[--v->n_rx];
    v->rx_index[v->n_rx] = 0;
    return;
  }
}

void sec_vtep_forget(struct dp *dp, uint32_t vid) {
  struct dp_vtep *v = &dp->vteps[vid];
  for (unsigned i = 0; i < v->n_rx; i++) rxkey_free(rxmap_remove(dp, v->rx_index[i]));
  v->n_rx = 0;
  memset(v->rx_index, 0, sizeof v->rx_index);
  txkey_free(v->tx);
  v->tx = NULL;
}

int sec_init(struct dp *dp, uint8_t cipher, const char **step) {
  if (!cipher) {
    const char *env = getenv("VTEPD_CIPHER");
    if (env && *env && !(cipher = sec_cipher_parse(env))) {
      *step = "VTEPD_CIPHER (aes-256-gcm or chacha20-poly1305)";
      return EINVAL;
    }
  }
  if (cipher && cipher != DP_SEC_AES_GCM && cipher != DP_SEC_CHACHA) {
    *step = "cipher (4 aes-256-gcm or 5 chacha20-poly1305)";
    return EINVAL;
  }
  dp->tx_cipher = cipher ? cipher : sec_cipher_auto();
  /* Zero pages until used: a data path without encryption pays for no table. */
  dp->rx_keys = calloc(DP_SEC_RX_SLOTS, sizeof *dp->rx_keys);
  if (!dp->rx_keys) {
    *step = "receive key table";
    return ENOMEM;
  }
  return 0;
}

void sec_free(struct dp *dp) {
  if (dp->rx_keys)
    for (uint32_t i = 0; i < DP_SEC_RX_SLOTS; i++) rxkey_free(dp->rx_keys[i]);
  free(dp->rx_keys);
  dp->rx_keys = NULL;
  for (uint32_t v = 1; v < dp->hi_vtep; v++) {
    txkey_free(dp->vteps[v].tx);
    dp->vteps[v].tx = NULL;
  }
}

const char *dp_cipher(const struct dp *dp) { return sec_cipher_name(dp->tx_cipher); }

#define CHECK_VTEP(dp, vid)                                                                                            \
  do {                                                                                                                 \
    if ((vid) == 0 || (vid) >= DP_MAX_VTEPS)                                                                           \
      return dp_fail(dp, ERANGE, "vtepId %u is out of range 1..%u", (unsigned)(vid), (unsigned)(DP_MAX_VTEPS - 1));    \
  } while (0)

/* A VTEP keys can be installed for (write lock held): 0 or the errno, dp_fail'ed. */
static int vtep_keyable(struct dp *dp, uint32_t vid) {
  const struct dp_vtep *v = &dp->vteps[vid];
  if (!v->in_use) return dp_fail(dp, ENOENT, "VTEP %u does not exist", vid);
  if (v->encap != DP_ENCAP_VXLAN) return dp_fail(dp, EINVAL, "VTEP %u is not a VXLAN (UDP) VTEP: no encryption", vid);
  return 0;
}

int dp_key_rx_set(struct dp *dp, uint32_t index, uint32_t vid, const uint8_t key[32]) {
  if (index == 0) return dp_fail(dp, EINVAL, "receiver index 0 is reserved");
  CHECK_VTEP(dp, vid);
  struct sec_rxkey *nk = calloc(1, sizeof *nk);
  if (!nk) return dp_fail(dp, ENOMEM, "no memory for a receive key");
  pthread_spin_init(&nk->lock, PTHREAD_PROCESS_PRIVATE);
  pthread_rwlock_wrlock(&dp->lock);
  int err = vtep_keyable(dp, vid);
  struct dp_vtep *v = &dp->vteps[vid];
  struct sec_rxkey *k = err ? NULL : rxkey_lookup(dp, index);
  if (!err && (!k || k->vtep != vid) && v->n_rx >= DP_SEC_RX_PER_VTEP)
    err = dp_fail(dp, ENOSPC, "VTEP %u has %u receive keys already", vid, (unsigned)DP_SEC_RX_PER_VTEP);
  if (!err) {
    if (k && k->vtep != vid) vtep_rx_unlink(&dp->vteps[k->vtep], index);
    if (!k || k->vtep != vid) v->rx_index[v->n_rx++] = index;
    if (!k) {
      k = nk;
      nk = NULL;
      k->index = index;
      rxmap_insert(dp, k);
    }
    /* New or replaced: a fresh window, and EV_KEY_USED again (no fast-path reader now). */
    k->vtep = vid;
    k->gen = ++dp->key_gen;
    memcpy(k->key, key, DP_SEC_KEYLEN);
    k->used = 0;
    k->top = 0;
    memset(k->ring, 0, sizeof k->ring);
  }
  pthread_rwlock_unlock(&dp->lock);
  rxkey_free(nk);
  return err;
}

int dp_key_rx_del(struct dp *dp, uint32_t index) {
  pthread_rwlock_wrlock(&dp->lock);
  struct sec_rxkey *k = index ? rxmap_remove(dp, index) : NULL;
  if (k) vtep_rx_unlink(&dp->vteps[k->vtep], index);
  pthread_rwlock_unlock(&dp->lock);
  rxkey_free(k);
  return 0;
}

int dp_key_tx_set(struct dp *dp, uint32_t vid, uint32_t remote_index, const uint8_t key[32]) {
  CHECK_VTEP(dp, vid);
  struct sec_txkey *nk = calloc(1, sizeof *nk);
  if (!nk) return dp_fail(dp, ENOMEM, "no memory for a send key");
  nk->remote_index = remote_index;
  memcpy(nk->key, key, DP_SEC_KEYLEN);
  pthread_rwlock_wrlock(&dp->lock);
  int err = vtep_keyable(dp, vid);
  if (!err) {
    nk->gen = ++dp->key_gen;
    struct sec_txkey *old = dp->vteps[vid].tx;
    dp->vteps[vid].tx = nk;
    nk = old;
  }
  pthread_rwlock_unlock(&dp->lock);
  txkey_free(nk);
  return err;
}

int dp_key_tx_del(struct dp *dp, uint32_t vid) {
  CHECK_VTEP(dp, vid);
  pthread_rwlock_wrlock(&dp->lock);
  struct sec_txkey *old = dp->vteps[vid].tx;
  dp->vteps[vid].tx = NULL;
  pthread_rwlock_unlock(&dp->lock);
  txkey_free(old);
  return 0;
}

int dp_tenant_encrypt(struct dp *dp, uint32_t tid, bool required) {
  if (tid == 0 || tid >= DP_MAX_TENANTS)
    return dp_fail(dp, ERANGE, "tenantId %u is out of range 1..%u", tid, (unsigned)(DP_MAX_TENANTS - 1));
  int err = 0;
  pthread_rwlock_wrlock(&dp->lock);
  if (!dp->tenants[tid].in_use) err = dp_fail(dp, ENOENT, "tenant %u does not exist", tid);
  else dp->tenants[tid].encrypt = required;
  pthread_rwlock_unlock(&dp->lock);
  return err;
}

int dp_send_secure(struct dp *dp, uint32_t vid, const uint8_t *p, size_t n, bool df) {
  CHECK_VTEP(dp, vid);
  if (dp->stopped) return dp_fail(dp, ESHUTDOWN, "the data path was stopped: no underlay sockets");
  if (n == 0 || n + DP_SEC_OVERHEAD > 65507)
    return dp_fail(dp, EMSGSIZE, "payload of %zu bytes is not 1..%u", n, 65507u - DP_SEC_OVERHEAD);
  struct dp_worker *w = dp->ctrl;
  /* Without DF: switched on the receive socket for this one send, the fast path held off. */
  if (df) pthread_rwlock_rdlock(&dp->lock);
  else pthread_rwlock_wrlock(&dp->lock);
  const struct dp_vtep *v = &dp->vteps[vid];
  int err = 0;
  uint64_t ctr;
  if (!v->in_use) {
    err = dp_fail(dp, ENOENT, "VTEP %u does not exist", vid);
  } else if (v->encap != DP_ENCAP_VXLAN) {
    err = dp_fail(dp, EINVAL, "VTEP %u is not a VXLAN (UDP) VTEP: no encryption", vid);
  } else if (!v->tx) {
    err = dp_fail(dp, ENOKEY, "VTEP %u has no send key", vid);
  } else if (!sec_tx_counters(v->tx, 1, &ctr)) {
    err = dp_fail(dp, ENOKEY, "VTEP %u: its send key is used up (rekey)", vid);
  } else {
    uint8_t *out = w->scratch;
    sec_hdr_build(out, dp->tx_cipher, v->tx->remote_index, ctr);
    struct iovec in = {(void *)p, n};
    if (!aead_seal(&w->aead, dp->tx_cipher, v->tx->key, v->tx->gen, out, &in, 1, out + DP_SEC_HLEN)) {
      err = dp_fail(dp, ENOMEM, "OpenSSL could not seal the message");
    } else {
      const bool alt = dp->alt.family && v->sa.ss_family == dp->alt.family;
      const int fd = alt ? dp->alt.rx_fd : dp->rx_fd;
      const int v4 = v->sa.ss_family == AF_INET;
      const int lvl = v4 ? IPPROTO_IP : IPPROTO_IPV6, opt = v4 ? IP_MTU_DISCOVER : IPV6_MTU_DISCOVER;
      if (!df) {
        int dont = v4 ? IP_PMTUDISC_DONT : IPV6_PMTUDISC_DONT;
        setsockopt(fd, lvl, opt, &dont, sizeof dont);
      }
      ssize_t r;
      do r = sendto(fd, out, n + DP_SEC_OVERHEAD, MSG_DONTWAIT, (const struct sockaddr *)&v->sa, v->salen);
      while (r < 0 && errno == EINTR);
      int e = r < 0 ? errno : 0;
      if (!df) {
        int back = v4 ? IP_PMTUDISC_PROBE : IPV6_PMTUDISC_PROBE;
        setsockopt(fd, lvl, opt, &back, sizeof back);
      }
      if (e == EMSGSIZE)
        err = dp_fail(dp, EMSGSIZE, "%zu bytes do not fit the local link (no fragmenting)", n + DP_SEC_OVERHEAD);
      else if (e) err = dp_fail(dp, e, "sendto: %s", strerror(e));
      else {
        count(w, DPC_secure_tx_packets);
        count(w, DPC_secure_control_tx);
        io_count(&w->stats.vtep[vid].tx_packets, &w->stats.vtep[vid].tx_bytes, n + DP_SEC_OVERHEAD);
      }
    }
  }
  pthread_rwlock_unlock(&dp->lock);
  return err;
}
