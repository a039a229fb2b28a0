/*
 * An LD_PRELOAD library that makes one program as large as node (#18): in a process whose
 * command name starts with $BALLOON_COMM it maps $BALLOON_MB MB at start-up and touches it
 * once (in 2 MB pages with BALLOON_HUGE=1), then leaves it idle. With it, tinc's round trip
 * through `npm run bench:latency` shows vtepd's tail at -i 0.2 (docs/performance.md, "What
 * the long runs at -i 0.2 are"):
 *
 *   gcc -O2 -shared -fPIC -o /tmp/balloon.so bench/micro/balloon.c
 *   LD_PRELOAD=/tmp/balloon.so BALLOON_COMM=tincd BALLOON_MB=100 npm run bench:latency
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

__attribute__((constructor)) static void balloon(void) {
  const char *who = getenv("BALLOON_COMM");
  const char *size = getenv("BALLOON_MB");
  if (!who || !size) return;
  char comm[64] = {0};
  FILE *f = fopen("/proc/self/comm", "r");
  if (!f) return;
  if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
  fclose(f);
  if (strncmp(comm, who, strlen(who)) != 0) return;
  size_t mb = (size_t)atol(size);
  if (!mb) return;
  char *m = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return;
  if (getenv("BALLOON_HUGE")) madvise(m, mb << 20, MADV_HUGEPAGE);
  memset(m, 1, mb << 20);
}
