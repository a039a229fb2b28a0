/*
 * Unit tests of native/fdb.c, built with cc and run by test/native/fdb.test.ts. Prints TAP
 * and exits 1 if anything failed.
 *
 * - Random churn (set, delete, flush a tenant, delete every MAC behind a place) against a
 *   plain list of what should be there: every lookup, the count, each block's count of
 *   entries, and the ageing dump agree with it after every step.
 * - A table smaller than one block, flushed by tenant and by place.
 * - Memory: a table of the default size with a few MACs, dumped for ageing and flushed,
 *   keeps only the pages its MACs are in resident (mincore), not the whole 12 MB.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fdb.h"

static int n_test, n_fail;

static void check(int ok, const char *name) {
  n_test++;
  if (!ok) n_fail++;
  printf("%sok %d - %s\n", ok ? "" : "not ", n_test, name);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

#define MAXREF 6000
static struct {
  uint64_t key;
  uint8_t kind;
  uint32_t id;
} ref[MAXREF];
static unsigned nref;

static int ref_find(uint64_t key) {
  for (unsigned i = 0; i < nref; i++)
    if (ref[i].key == key) return (int)i;
  return -1;
}
static void ref_drop(unsigned i) { ref[i] = ref[--nref]; }

/* Everything the table says agrees with ref; names the first disagreement. */
static const char *agrees(const struct fdb *f, uint8_t *dump) {
  if (f->count != nref) return "count";
  for (unsigned i = 0; i < nref; i++) {
    const struct fdb_entry *e = fdb_lookup(f, ref[i].key);
    if (!e || e->kind != ref[i].kind || e->id != ref[i].id) return "lookup of a present key";
  }
  uint32_t blocks = (f->mask >> FDB_BLOCK_SHIFT) + 1, sum = 0;
  for (uint32_t b = 0; b < blocks; b++) {
    uint32_t n = 0;
    for (uint32_t s = b << FDB_BLOCK_SHIFT; s <= f->mask && s < (b + 1) << FDB_BLOCK_SHIFT; s++) n += f->slots[s].key != 0;
    if (n != f->used[b]) return "a block's count";
    sum += n;
  }
  if (sum != nref) return "entries in the blocks";
  if (fdb_idle_dump(f, 0, dump, MAXREF) != nref) return "ageing dump length";
  return NULL;
}

static uint64_t key_of(uint32_t tenant, uint64_t mac) { return (uint64_t)tenant << 48 | (mac & 0xffffffffffffull); }

static void churn(void) {
  struct fdb f;
  static uint8_t dump[MAXREF * FDB_IDLE_RECORD];
  check(fdb_init(&f, 4096) == 0, "churn: a table of 4096 entries (16 blocks)");
  const char *bad = NULL;
  unsigned step, sets = 0, dels = 0, flushes = 0, places = 0;
  for (step = 0; step < 60000 && !bad; step++) {
    uint64_t r = next();
    uint32_t tenant = 1 + (uint32_t)(r % 5);
    /* Few distinct MACs so that sets overwrite and deletes hit; near-full so clusters are long. */
    uint64_t mac = next() % 5000;
    unsigned op = (unsigned)(r >> 8) % 10000;
    if (op < 6000) {
      uint8_t kind = 1 + (uint8_t)(r >> 20 & 1);
      uint32_t id = 1 + (uint32_t)(r >> 24) % 7;
      uint64_t key = key_of(tenant, mac);
      int i = ref_find(key);
      int err = fdb_set(&f, key, kind, id, (uint32_t)step);
      if (i < 0 && nref >= 4096) {
        if (err != ENOSPC) bad = "a set past the limit is refused";
        continue;
      }
      if (err) bad = "set";
      if (i < 0) i = (int)nref++;
      ref[i].key = key, ref[i].kind = kind, ref[i].id = id;
      sets++;
    } else if (op < 9994) {
      uint64_t key = key_of(tenant, mac);
      int i = ref_find(key);
      if (fdb_del(&f, key) != (i < 0 ? ENOENT : 0)) bad = "delete";
      if (i >= 0) ref_drop((unsigned)i), dels++;
      if (fdb_lookup(&f, key)) bad = "a deleted key is gone";
    } else if (op < 9997) {
      uint32_t want = 0;
      for (unsigned i = 0; i < nref;) (fdb_key_tenant(ref[i].key) == tenant) ? (ref_drop(i), want++) : i++;
      if (fdb_flush_tenant(&f, tenant) != want) bad = "flush of a tenant removes its entries";
      flushes++;
    } else {
      uint8_t kind = 1 + (uint8_t)(r >> 20 & 1);
      uint32_t id = 1 + (uint32_t)(r >> 24) % 7, want = 0;
      for (unsigned i = 0; i < nref;) (ref[i].kind == kind && ref[i].id == id) ? (ref_drop(i), want++) : i++;
      if (fdb_del_pointing_at(&f, kind, id) != want) bad = "delete of what points at a place";
      places++;
    }
    if (!bad && (step % 97 == 0 || op >= 9994)) bad = agrees(&f, dump);
  }
  if (!bad) bad = agrees(&f, dump);
  if (bad) printf("# step %u: %s\n", step, bad);
  printf("# %u sets, %u deletes, %u tenant flushes, %u place flushes; %u entries at the end\n", sets, dels, flushes, places, nref);
  check(!bad, "churn: lookups, counts, block counts and the ageing dump agree with a plain list at every step");
  fdb_free(&f);
}

static unsigned resident_pages(const void *p, size_t len) {
  size_t pages = (len + 4095) / 4096;
  unsigned char *v = malloc(pages);
  unsigned n = 0;
  if (v && mincore((void *)p, len, v) == 0)
    for (size_t i = 0; i < pages; i++) n += v[i] & 1;
  free(v);
  return n;
}

static void memory(void) {
  struct fdb f;
  const uint32_t limit = 262144; /* DP_FDB_CAPACITY */
  check(fdb_init(&f, limit) == 0, "memory: a table of the default size");
  size_t bytes = ((size_t)f.mask + 1) * sizeof *f.slots;
  check(resident_pages(f.slots, bytes) == 0, "memory: nothing resident before the first MAC");
  for (uint64_t m = 1; m <= 8; m++) fdb_set(&f, key_of(1, m * 0x1111), FDB_KIND_PORT, 1, 0);
  uint8_t dump[16 * FDB_IDLE_RECORD];
  unsigned after_set = resident_pages(f.slots, bytes);
  unsigned n = 0;
  for (int round = 0; round < 3; round++) n = fdb_idle_dump(&f, 10, dump, 16);
  fdb_flush_tenant(&f, 2);
  fdb_del_pointing_at(&f, FDB_KIND_VTEP, 9);
  unsigned after_scans = resident_pages(f.slots, bytes);
  printf("# %zu pages in the table; %u resident after 8 MACs, %u after 3 ageing dumps and 2 flushes\n", bytes / 4096, after_set,
         after_scans);
  check(n == 8, "memory: the ageing dump finds the 8 MACs");
  /* Each MAC's block (3 pages) at most, and the empty slot a flush starts after. */
  check(after_scans <= 8 * 3 + 3, "memory: the scans leave only the MACs' blocks resident");
  fdb_free(&f);
}

/* A table smaller than one block: the flushes' block skip must still end the pass right. */
static void tiny(void) {
  struct fdb f;
  check(fdb_init(&f, 8) == 0, "tiny: a table of 8 entries (16 slots, one block)");
  for (uint64_t m = 1; m <= 8; m++) fdb_set(&f, key_of(1 + (uint32_t)(m & 1), m), FDB_KIND_PORT, (uint32_t)m, 0);
  uint32_t odd = fdb_flush_tenant(&f, 2), left = f.count;
  uint32_t gone = fdb_del_pointing_at(&f, FDB_KIND_PORT, 2);
  uint8_t dump[8 * FDB_IDLE_RECORD];
  int ok = odd == 4 && left == 4 && gone == 1 && f.count == 3 && f.used[0] == 3 && fdb_idle_dump(&f, 0, dump, 8) == 3 &&
           !fdb_lookup(&f, key_of(2, 1)) && !fdb_lookup(&f, key_of(1, 2)) && fdb_lookup(&f, key_of(1, 4));
  check(ok, "tiny: a tenant flush, a place flush and the ageing dump");
  fdb_free(&f);
}

int main(void) {
  churn();
  tiny();
  memory();
  printf("1..%d\n", n_test);
  return n_fail ? 1 : 0;
}
