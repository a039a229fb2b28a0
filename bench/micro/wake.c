/*
 * What one hand-off between two threads costs on this machine: a thread writes a byte to
 * a pipe and waits in poll() on a second pipe; a peer thread, asleep in poll() on the
 * first, wakes, reads it and answers. One round trip is two wake-ups. Measured with the
 * peer on the same CPU and on another CPU, with the CPUs idle between round trips (as
 * under a ping every few ms) and back to back.
 *
 * This is the unit a userspace data plane pays per packet hand-off (an application to the
 * daemon's thread through a TAP, one daemon thread to another through a socket), and what
 * the kernel's VXLAN over veth does not pay at all: it runs the whole path in the sender's
 * own system call. `npm run bench:micro` prints it after the per-routine figures.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static int to_peer[2], from_peer[2];
static int peer_cpu;

static void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *peer(void *arg) {
  (void)arg;
  pin(peer_cpu);
  char c;
  for (;;) {
    struct pollfd p = {to_peer[0], POLLIN, 0};
    poll(&p, 1, -1);
    if (read(to_peer[0], &c, 1) != 1 || c == 0) break;
    if (write(from_peer[1], &c, 1) != 1) break;
  }
  return NULL;
}

/* Median round trip (two wake-ups) in µs, the peer on `cpu`, `gap_us` idle between trips. */
static double round_trip(int cpu, int gap_us, int n) {
  peer_cpu = cpu;
  if (pipe(to_peer) || pipe(from_peer)) return -1;
  pthread_t t;
  pthread_create(&t, NULL, peer, NULL);
  double *rt = malloc(sizeof *rt * (size_t)n);
  char c = 1;
  for (int i = 0; i < n; i++) {
    double t0 = now_us();
    if (write(to_peer[1], &c, 1) != 1) break;
    struct pollfd p = {from_peer[0], POLLIN, 0};
    poll(&p, 1, -1);
    if (read(from_peer[0], &c, 1) != 1) break;
    rt[i] = now_us() - t0;
    if (gap_us) usleep((useconds_t)gap_us);
  }
  c = 0;
  if (write(to_peer[1], &c, 1) != 1) return -1;
  pthread_join(t, NULL);
  for (int k = 0; k < 2; k++) {
    close(to_peer[k]);
    close(from_peer[k]);
  }
  qsort(rt, (size_t)n, sizeof *rt, cmp_double);
  double m = rt[n / 2];
  free(rt);
  return m;
}

int main(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  pin(0);
  printf("%-34s %10s\n", "thread hand-off (pipe + poll)", "us/wake-up");
  printf("%-34s %10.1f\n", "same CPU, idle 2 ms between", round_trip(0, 2000, 2000) / 2);
  printf("%-34s %10.1f\n", "same CPU, back to back", round_trip(0, 0, 20000) / 2);
  if (cpus > 1) {
    printf("%-34s %10.1f\n", "other CPU, idle 2 ms between", round_trip(1, 2000, 2000) / 2);
    printf("%-34s %10.1f\n", "other CPU, back to back", round_trip(1, 0, 20000) / 2);
  }
  return 0;
}
