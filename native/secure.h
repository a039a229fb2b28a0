/*
 * Encrypted tunnels: the transport (per-datagram AEAD on the underlay UDP port), its key
 * tables and the replay window. TypeScript runs the handshake (Noise IK, as WireGuard) and
 * installs symmetric session keys here; the fast path seals and opens every datagram of an
 * encrypted tenant with OpenSSL's EVP (no primitive is written here).
 *
 * Transport datagram (the UDP payload on the underlay port, the same port as VXLAN):
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     type      |                 zero (3 bytes)                |  type 4 AES-256-GCM,
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+       5 ChaCha20-Poly1305
 *   |        receiver index (u32 little endian): the RECEIVER's        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 counter (u64 little endian)                   |
 *   +                                                               +
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  ciphertext of P ...                                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  tag (16 bytes)                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *   key 32 bytes; nonce (12 bytes) = 4 zero bytes || counter (8 bytes LE); AAD = the 16
 *   header bytes. P = a VXLAN header (first byte 0x08) + the Ethernet frame, or a liveness
 *   message ("\0VTP..."). Overhead over plain VXLAN: 32 bytes (DP_SEC_OVERHEAD).
 *
 * The first byte tells the underlay's payloads apart: 0x08 VXLAN, 0x00 'V' 'T' 'P'
 * liveness, 1/2/3 handshake (exactly 148, 92, 52 bytes, bytes 1..3 zero: handed to
 * TypeScript as EV_CONTROL, counted handshake_rx; other lengths handshake_malformed),
 * 4/5 this transport. Each sender picks its cipher (AES-256-GCM with AES-NI, else
 * ChaCha20-Poly1305; dp_config.cipher or VTEPD_CIPHER force one); receivers take both.
 *
 * Key tables (changed under the data path's write lock, read by the fast path under its
 * read lock, so a key never goes away during a batch):
 *   - receive keys: a hash map of OUR local index (chosen by TypeScript, nonzero) -> key,
 *     its VTEP (the identity of every packet it opens: never the outer address), a replay
 *     window, and whether it was used yet. At most DP_SEC_RX_PER_VTEP per VTEP (current,
 *     previous, next: ENOSPC beyond), so the table is bounded by the VTEP table.
 *   - send keys: one per VTEP, the peer's index for it and a counter (from 0, an atomic
 *     fetch-add: several threads send to one VTEP) that is never reused.
 * Every key gets a generation number; each thread keeps its own EVP contexts (they are
 * not thread-safe), keyed by generation, so a context is re-keyed only when the key it
 * holds changes, and only the nonce is set per packet.
 *
 * Replay (RFC 6479, as WireGuard): a ring of DP_SEC_WINDOW_BITS bits behind the highest
 * counter seen; a counter more than DP_SEC_WINDOW_BITS - 64 behind it, or seen, is
 * refused; so is one >= DP_SEC_REJECT_AFTER. A cheap check before decrypting, the real
 * one (under the key's spinlock: several queues' threads may open with one key) after the
 * tag verified, so an unauthenticated packet never changes state.
 */
#ifndef VTEPD_SECURE_H
#define VTEPD_SECURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DP_SEC_AES_GCM  4 /* type byte: AES-256-GCM */
#define DP_SEC_CHACHA   5 /* type byte: ChaCha20-Poly1305 */
#define DP_SEC_HLEN     16
#define DP_SEC_TAGLEN   16
#define DP_SEC_OVERHEAD (DP_SEC_HLEN + DP_SEC_TAGLEN)
#define DP_SEC_KEYLEN   32
/* Handshake messages (TypeScript's): type byte and exact length. */
#define DP_HS_INIT       1
#define DP_HS_INIT_LEN   148
#define DP_HS_RESP       2
#define DP_HS_RESP_LEN   92
#define DP_HS_COOKIE     3
#define DP_HS_COOKIE_LEN 52
/* Receive keys per VTEP (current, previous, next). */
#define DP_SEC_RX_PER_VTEP 3
/* Receive-key hash map slots: twice the most keys there can be, a power of two. */
#define DP_SEC_RX_SLOTS 131072
/* Replay window ring: bits (a power of two); the window is 64 bits less. */
#define DP_SEC_WINDOW_BITS  4096
#define DP_SEC_WINDOW_WORDS (DP_SEC_WINDOW_BITS / 64)
/* Counters at or past this are never sent nor accepted (WireGuard's REJECT_AFTER_MESSAGES). */
#define DP_SEC_REJECT_AFTER (UINT64_MAX - (1ull << 13) + 1)
/* EV_ENDPOINT: at most one per VTEP per this many ms, per thread. */
#define DP_SEC_ENDPOINT_MS 100

struct sec_rxkey {
  uint32_t index; /* ours: the receiver index senders put in the header */
  uint32_t vtep;
  uint64_t gen;
  uint8_t key[DP_SEC_KEYLEN];
  int used; /* EV_KEY_USED raised (atomic) */
  pthread_spinlock_t lock;
  uint64_t top; /* highest counter accepted + 1; 0: none yet */
  uint64_t ring[DP_SEC_WINDOW_WORDS];
};

struct sec_txkey {
  uint32_t remote_index; /* the peer's index for this session (goes in the header) */
  uint64_t gen;
  uint8_t key[DP_SEC_KEYLEN];
  uint64_t counter; /* next counter to use (atomic fetch-add) */
};

/* A thread's EVP contexts: a few, direct-mapped by key generation and direction. */
#define AEAD_SLOTS 8
struct aead_slot {
  void *ctx; /* EVP_CIPHER_CTX *, made on first use */
  uint64_t gen;
  uint8_t type; /* DP_SEC_* it holds */
  bool enc;
};
struct aead_cache {
  struct aead_slot s[AEAD_SLOTS];
};

static inline uint32_t sec_get_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t sec_get_le64(const uint8_t *p) {
  return (uint64_t)sec_get_le32(p) | (uint64_t)sec_get_le32(p + 4) << 32;
}

/* The 16-byte header of a transport datagram. */
static inline void sec_hdr_build(uint8_t *h, uint8_t type, uint32_t index, uint64_t counter) {
  h[0] = type;
  h[1] = h[2] = h[3] = 0;
  for (int i = 0; i < 4; i++) h[4 + i] = (uint8_t)(index >> (8 * i));
  for (int i = 0; i < 8; i++) h[8 + i] = (uint8_t)(counter >> (8 * i));
}

/* Is this a handshake message's first four bytes and exact length? (first byte 1..3) */
static inline bool sec_is_handshake(const uint8_t *p, size_t len) {
  if (len < 4 || p[1] | p[2] | p[3]) return false;
  return (p[0] == DP_HS_INIT && len == DP_HS_INIT_LEN) || (p[0] == DP_HS_RESP && len == DP_HS_RESP_LEN) ||
         (p[0] == DP_HS_COOKIE && len == DP_HS_COOKIE_LEN);
}

/* The cipher this CPU sends with: DP_SEC_AES_GCM with AES instructions, else DP_SEC_CHACHA. */
uint8_t sec_cipher_auto(void);
/* "aes-256-gcm" / "chacha20-poly1305" <-> DP_SEC_*; 0 for an unknown name. */
const char *sec_cipher_name(uint8_t type);
uint8_t sec_cipher_parse(const char *name);

/*
 * Seal: header h (16 bytes, its counter the nonce's) as AAD, the plaintext gathered from
 * in[0..nin), ciphertext written contiguously to out (out may be in[0].iov_base: in
 * place) and the tag after it. Open: ct is len bytes of ciphertext then the tag; the
 * plaintext (len - 16 bytes) goes to out (may be ct). Open returns 1 when the tag
 * verified, 0 when not, -1 if OpenSSL failed (no memory); seal true when it worked.
 */
bool aead_seal(struct aead_cache *c, uint8_t type, const uint8_t *key, uint64_t gen, const uint8_t *h,
               const struct iovec *in, unsigned nin, uint8_t *out);
int aead_open(struct aead_cache *c, uint8_t type, const uint8_t *key, uint64_t gen, const uint8_t *h, const uint8_t *ct,
              size_t len, uint8_t *out);
void aead_cache_free(struct aead_cache *c);

/* Replay window: may the counter still be accepted (no change), and accept it (true once). */
bool sec_replay_precheck(const struct sec_rxkey *k, uint64_t counter);
bool sec_replay_update(struct sec_rxkey *k, uint64_t counter);
void sec_replay_reset(struct sec_rxkey *k);

/* Reserve n consecutive send counters; false when the key is used up. */
static inline bool sec_tx_counters(struct sec_txkey *k, uint32_t n, uint64_t *first) {
  uint64_t c = __atomic_fetch_add(&k->counter, n, __ATOMIC_RELAXED);
  *first = c;
  if (c < DP_SEC_REJECT_AFTER && DP_SEC_REJECT_AFTER - c >= n) return true;
  __atomic_store_n(&k->counter, DP_SEC_REJECT_AFTER, __ATOMIC_RELAXED); /* used up: never wraps */
  return false;
}

#ifdef __cplusplus
}
#endif

#endif
