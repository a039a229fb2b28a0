/* Timing shared by the micro-benchmarks (micro.c, switch.c, wake.c, rss.c). */
#ifndef VTEPD_BENCH_MICRO_H
#define VTEPD_BENCH_MICRO_H

#include <time.h>

static inline double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ns per packet of fn (`packets` per call): calibrated to ~0.2 s a round, best of 5 rounds. */
static inline double best_ns_per_packet(void (*fn)(void), unsigned packets) {
  long iters = 1000;
  double best = 1e30;
  for (;;) {
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) fn();
    if (now_ns() - t0 > 2e8) break;
    iters *= 2;
  }
  for (int round = 0; round < 5; round++) {
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) fn();
    double per = (now_ns() - t0) / ((double)iters * packets);
    if (per < best) best = per;
  }
  return best;
}

static inline double now_us(void) { return now_ns() / 1e3; }

/* qsort's comparison for doubles, ascending. */
static inline int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#endif
