/*
 * What a wake-up costs as a function of the process's resident memory (#18). One thread
 * sleeps 200 ms at a time (as a fast-path thread between pings at -i 0.2) and measures how
 * late it wakes; a sibling thread maps, touches and unmaps 64 KB every 10 ms, as any
 * allocator or garbage collector in the same process does. The process also holds N MB of
 * memory, touched once at the start and idle after that, in 4 KB pages or (MADV_HUGEPAGE)
 * in 2 MB pages.
 *
 * On this VM kind the lateness grows with the resident memory in 4 KB pages and not with
 * memory in huge pages: after a sibling's unmap, the sleeping thread's next run pays for
 * the process's whole page tables (the guest sees it as time, no fault and no system call).
 * A node process holding vtepd's fast path is about 90 MB; tinc and OpenVPN are a few MB.
 * `npm run bench:micro` prints it after the thread wake-up; `rss N [huge]` runs one size.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define ROUNDS 30

static volatile int stop;

static void *unmapper(void *arg) {
  (void)arg;
  while (!stop) {
    void *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      memset(p, 1, 1 << 16);
      munmap(p, 1 << 16);
    }
    usleep(10000);
  }
  return NULL;
}

/* Median and 90th percentile of the lateness of ROUNDS 200 ms sleeps, holding `mb` MB. */
static void measure(size_t mb, int huge) {
  char *m = NULL;
  if (mb) {
    m = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      perror("mmap");
      return;
    }
    if (huge) madvise(m, mb << 20, MADV_HUGEPAGE);
    memset(m, 1, mb << 20);
  }
  stop = 0;
  pthread_t t;
  pthread_create(&t, NULL, unmapper, NULL);
  double late[ROUNDS];
  usleep(100000);
  for (int i = 0; i < ROUNDS; i++) {
    double a = now_us();
    usleep(200000);
    late[i] = now_us() - a - 200000;
  }
  stop = 1;
  pthread_join(t, NULL);
  qsort(late, ROUNDS, sizeof *late, cmp_double);
  printf(" %10.0f %10.0f %10.0f\n", late[ROUNDS / 2], late[ROUNDS * 9 / 10], late[ROUNDS - 1]);
  if (m) munmap(m, mb << 20);
}

static void row(size_t mb, int huge) {
  char label[64];
  snprintf(label, sizeof label, "%zu MB resident%s", mb, huge ? ", huge pages" : "");
  printf("%-34s", label);
  fflush(stdout);
  measure(mb, huge);
}

int main(int argc, char **argv) {
  printf("%-34s %10s %10s %10s\n", "wake-up after 200 ms (a sibling", "late med", "p90", "max us");
  printf("%-34s\n", "thread unmaps 64 KB every 10 ms)");
  if (argc > 1) {
    row((size_t)atol(argv[1]), argc > 2 && strcmp(argv[2], "huge") == 0);
    return 0;
  }
  row(4, 0);
  row(100, 0);
  row(200, 0);
  row(200, 1);
  return 0;
}
