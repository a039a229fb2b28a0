/*
 * The FDB cache: exact match (tenant, MAC) -> place (a port or a VTEP).
 *
 * TypeScript owns the authoritative MAC tables and programs this cache; the fast path
 * only looks it up and stamps last_seen. Open addressing with linear probing and
 * backward-shift deletion (no tombstones, so lookups stay short under churn). The table
 * has twice as many slots as entries allowed: the load factor never passes 1/2.
 *
 * Concurrency: lookups run under the data path's read lock from several threads;
 * set/del/flush run under its write lock. last_seen_ms is the one field written under
 * the read lock, with relaxed atomics.
 */
#ifndef VTEPD_FDB_H
#define VTEPD_FDB_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"

#define FDB_KIND_PORT 1
#define FDB_KIND_VTEP 2

/* One record of fdb_idle_dump: u32 tenantId, u8[6] mac, u16 0, u32 idleMs (dpFdbIdle). */
#define FDB_IDLE_RECORD 16

struct fdb_entry {
  uint64_t key; /* tenant << 48 | mac48; 0 = empty slot (tenant 0 never exists) */
  uint32_t id;  /* portId or vtepId */
  uint32_t last_seen_ms; /* truncated monotonic ms: idle = now - last_seen, mod 2^32 */
  uint8_t kind; /* FDB_KIND_* */
};

/*
 * The slots in blocks of FDB_BLOCK (3 pages of 24-byte entries), each with its count of
 * entries: the scans (ageing, flushes) skip empty blocks. On this VM kind a read of a page
 * never written faults in a real one, so a scan of every slot made the whole table (12 MB
 * at the default size) resident though it held a handful of MACs.
 */
#define FDB_BLOCK_SHIFT 9
#define FDB_BLOCK (1u << FDB_BLOCK_SHIFT)

struct fdb {
  struct fdb_entry *slots; /* mmap()ed: page-aligned, so a block is whole pages */
  uint16_t *used;          /* entries in each block */
  uint32_t mask;           /* slots - 1 */
  uint32_t shift;          /* 64 - log2(slots), for Fibonacci hashing */
  uint32_t count;
  uint32_t limit; /* entries allowed (slots / 2) */
};

static inline uint64_t fdb_key(uint32_t tenant, const uint8_t *mac) {
  return (uint64_t)tenant << 48 | eth_mac48(mac);
}

static inline uint32_t fdb_key_tenant(uint64_t key) { return (uint32_t)(key >> 48); }

/* Stamp an entry seen now; skip the store (and the cache-line write) if unchanged. */
static inline void fdb_touch(struct fdb_entry *e, uint32_t now_ms) {
  if (__atomic_load_n(&e->last_seen_ms, __ATOMIC_RELAXED) != now_ms)
    __atomic_store_n(&e->last_seen_ms, now_ms, __ATOMIC_RELAXED);
}

/* limit: entries allowed, a power of two. Returns 0 or ENOMEM. */
int fdb_init(struct fdb *f, uint32_t limit);
void fdb_free(struct fdb *f);

/* Insert or overwrite. 0, or ENOSPC when a new key would exceed the limit. */
int fdb_set(struct fdb *f, uint64_t key, uint8_t kind, uint32_t id, uint32_t now_ms);
/* 0, or ENOENT. */
int fdb_del(struct fdb *f, uint64_t key);
struct fdb_entry *fdb_lookup(const struct fdb *f, uint64_t key);
/* Delete every entry of a tenant; returns how many. */
uint32_t fdb_flush_tenant(struct fdb *f, uint32_t tenant);
/* Delete every entry whose place is (kind, id); returns how many. */
uint32_t fdb_del_pointing_at(struct fdb *f, uint8_t kind, uint32_t id);
/* Write count * FDB_IDLE_RECORD bytes of idle records to out (cap records). */
uint32_t fdb_idle_dump(const struct fdb *f, uint32_t now_ms, uint8_t *out, uint32_t cap);

#endif
