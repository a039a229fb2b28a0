#include "fdb.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/*
 * src/native/addon.ts lists "u32 tenantId, u8[6] mac, u16 zero, u32 idleMs, u32 zero" (20 bytes)
 * but says 16-byte records; the stride is 16 and the trailing zero word is not written.
 * tenantId at 0, mac at 4, idleMs at 12 either way.
 */
struct fdb_idle_record {
  uint32_t tenant_id;
  uint8_t mac[6];
  uint16_t zero;
  uint32_t idle_ms;
};
_Static_assert(sizeof(struct fdb_idle_record) == FDB_IDLE_RECORD, "idle record is 16 bytes");

/* Fibonacci hashing: the multiply spreads MACs that differ only in low bytes. */
static inline uint32_t fdb_home(const struct fdb *f, uint64_t key) {
  return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> f->shift);
}

_Static_assert(sizeof(struct fdb_entry) == 24, "a block of FDB_BLOCK entries is 3 pages");

static size_t slots_bytes(const struct fdb *f) { return ((size_t)f->mask + 1) * sizeof *f->slots; }
static inline uint32_t block_of(uint32_t slot) { return slot >> FDB_BLOCK_SHIFT; }

int fdb_init(struct fdb *f, uint32_t limit) {
  uint32_t slots = limit * 2;
  memset(f, 0, sizeof *f);
  f->mask = slots - 1;
  f->shift = 64 - (uint32_t)__builtin_ctz(slots);
  f->limit = limit;
  /* Zero, untouched until a MAC lands in a block (or a lookup reads one). */
  void *m = mmap(NULL, slots_bytes(f), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  f->used = calloc(block_of(f->mask) + 1, sizeof *f->used);
  if (m == MAP_FAILED || !f->used) {
    if (m != MAP_FAILED) munmap(m, slots_bytes(f));
    free(f->used);
    f->used = NULL;
    return ENOMEM;
  }
  f->slots = m;
  return 0;
}

void fdb_free(struct fdb *f) {
  if (f->slots) munmap(f->slots, slots_bytes(f));
  free(f->used);
  f->slots = NULL;
  f->used = NULL;
}

struct fdb_entry *fdb_lookup(const struct fdb *f, uint64_t key) {
  for (uint32_t i = fdb_home(f, key);; i = (i + 1) & f->mask) {
    struct fdb_entry *e = &f->slots[i];
    if (e->key == key) return e;
    if (e->key == 0) return NULL;
  }
}

int fdb_set(struct fdb *f, uint64_t key, uint8_t kind, uint32_t id, uint32_t now_ms) {
  uint32_t i = fdb_home(f, key);
  for (; f->slots[i].key != 0; i = (i + 1) & f->mask) {
    if (f->slots[i].key == key) break;
  }
  struct fdb_entry *e = &f->slots[i];
  if (e->key == 0) {
    if (f->count >= f->limit) return ENOSPC;
    f->count++;
    f->used[block_of(i)]++;
  }
  e->kind = kind;
  e->id = id;
  __atomic_store_n(&e->last_seen_ms, now_ms, __ATOMIC_RELAXED);
  e->key = key;
  return 0;
}

/*
 * Backward-shift deletion: walk the cluster after the hole and move back every entry
 * whose home slot is not cyclically in (hole, j]; such an entry would become unreachable.
 */
static void fdb_remove_at(struct fdb *f, uint32_t hole) {
  f->used[block_of(hole)]--;
  for (uint32_t j = (hole + 1) & f->mask; f->slots[j].key != 0; j = (j + 1) & f->mask) {
    uint32_t home = fdb_home(f, f->slots[j].key);
    bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    f->slots[hole] = f->slots[j];
    f->used[block_of(hole)]++;
    f->used[block_of(j)]--;
    hole = j;
  }
  memset(&f->slots[hole], 0, sizeof f->slots[hole]);
  f->count--;
}

int fdb_del(struct fdb *f, uint64_t key) {
  struct fdb_entry *e = fdb_lookup(f, key);
  if (!e) return ENOENT;
  fdb_remove_at(f, (uint32_t)(e - f->slots));
  return 0;
}

/*
 * Delete matching entries in one pass. The pass starts just after an empty slot, so no
 * cluster wraps past its end: a backward shift only moves entries from later in the pass
 * into the current slot, which is why the slot is examined again after a removal. An empty
 * block is skipped whole: no cluster crosses it, so nothing shifts into it.
 */
static uint32_t fdb_delete_if(struct fdb *f, bool (*match)(const struct fdb_entry *, uint64_t, uint64_t),
                              uint64_t a, uint64_t b) {
  uint32_t start = 0, removed = 0;
  if (f->count == 0) return 0;
  while (f->slots[start].key != 0) start++; /* exists: load factor <= 1/2 */
  for (uint32_t n = 0; n <= f->mask; n++) {
    uint32_t i = (start + 1 + n) & f->mask;
    if (f->used[block_of(i)] == 0) {
      n += FDB_BLOCK - 1 - (i & (FDB_BLOCK - 1)); /* to the block's last slot */
      continue;
    }
    while (f->slots[i].key != 0 && match(&f->slots[i], a, b)) {
      fdb_remove_at(f, i);
      removed++;
    }
  }
  return removed;
}

static bool match_tenant(const struct fdb_entry *e, uint64_t tenant, uint64_t unused) {
  return fdb_key_tenant(e->key) == tenant;
}

static bool match_place(const struct fdb_entry *e, uint64_t kind, uint64_t id) {
  return e->kind == kind && e->id == id;
}

uint32_t fdb_flush_tenant(struct fdb *f, uint32_t tenant) {
  return fdb_delete_if(f, match_tenant, tenant, 0);
}

uint32_t fdb_del_pointing_at(struct fdb *f, uint8_t kind, uint32_t id) {
  return fdb_delete_if(f, match_place, kind, id);
}

uint32_t fdb_idle_dump(const struct fdb *f, uint32_t now_ms, uint8_t *out, uint32_t cap) {
  uint32_t n = 0;
  for (uint32_t i = 0; i <= f->mask && n < cap; i++) {
    if (f->used[block_of(i)] == 0) {
      i |= FDB_BLOCK - 1; /* past the empty block */
      continue;
    }
    const struct fdb_entry *e = &f->slots[i];
    if (e->key == 0) continue;
    struct fdb_idle_record r = {0};
    r.tenant_id = htole32(fdb_key_tenant(e->key));
    eth_mac_from48(r.mac, e->key);
    /* A fast-path thread may stamp the entry during the dump with a clock read after ours:
     * that is idle 0, not 2^32 - 1 ms (which would age an active MAC out). */
    uint32_t idle = now_ms - __atomic_load_n(&e->last_seen_ms, __ATOMIC_RELAXED);
    r.idle_ms = htole32((int32_t)idle < 0 ? 0 : idle);
    memcpy(out + (size_t)n * FDB_IDLE_RECORD, &r, sizeof r);
    n++;
  }
  return n;
}
