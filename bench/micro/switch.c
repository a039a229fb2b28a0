/*
 * Micro-benchmark of the switch itself: what an encap or decap thread does per frame
 * between its read and its send, on the data path's real objects (the fast path's
 * per-batch functions, native/dp_private.h), without threads and without system calls.
 * Built by bench/micro/run.sh, which links the C files of native/ as the addon does (-O2 -flto).
 *
 *   encap   a frame read from port 1 to a VTEP: inner checks, learning (a cache hit), FDB
 *           lookup, flow hash, VXLAN push, queued for sending (encap_frame)
 *   decap   a VXLAN datagram from VTEP 1 relayed (a hub) to VTEP 2: VTEP and VNI lookup,
 *           vxlan_pop, anti-spoofing, learning, FDB lookup, VXLAN push, queued (decap_buffer)
 *
 * The transmit queue is emptied after each call, unsent: nothing leaves the process (its
 * sockets are bound to loopback, in a network namespace of its own where allowed).
 *
 *   switch            ns per frame (best of 5 rounds, each ~0.2 s)
 *   switch --count N  each routine N times exactly once, for valgrind --tool=callgrind
 *
 * With -DDP_MONOLITH it includes native/fastpath.c instead: how bench/micro/run.sh
 * --baseline DIR measures a tree from before the fast path was split into objects.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifdef DP_MONOLITH
#include "fastpath.c"
#else
#include "dp_private.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static struct dp *dp;
static uint8_t frame[] = {
    0x02, 0, 0, 0, 0x02, 0x99, /* dst: behind VTEP 2 */
    0x02, 0, 0, 0, 0x01, 0x01, /* src: port 1 (encap); 02:00:00:00:01:02, VTEP 1 (decap) */
    0x08, 0x00,                /* IPv4, UDP, 64 bytes of payload */
    0x45, 0, 0, 92, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x13, 0x89, 0, 72, 0, 0,
};
#define FRAME_LEN (sizeof frame + 64)
static volatile uint32_t sink;

static void die(const char *what, int err) {
  fprintf(stderr, "switch: %s: %s\n", what, dp ? dp_last_error(dp) : strerror(err));
  exit(1);
}

static void sa4(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  struct sockaddr_in *in = (struct sockaddr_in *)ss;
  memset(ss, 0, sizeof *ss);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  inet_pton(AF_INET, ip, &in->sin_addr);
  *len = sizeof *in;
}

static void setup(void) {
  if (unshare(CLONE_NEWNET) == 0) { /* a loopback of our own, brought up */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
      ifr.ifr_flags |= IFF_UP;
      ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
  }
  struct dp_config cfg;
  memset(&cfg, 0, sizeof cfg);
  sa4("127.0.0.1", 0, &cfg.local, &cfg.local_len);
  cfg.source_ports = 1;
  cfg.no_offloads = true;
  const char *step = "?";
  int e = dp_create(&cfg, &dp, &step);
  if (e) die(step, e);
  struct sockaddr_storage ss;
  socklen_t len;
  if ((e = dp_tenant_set(dp, 1, 5001)) || (e = dp_tenant_relay(dp, 1, true))) die("tenant", e);
  sa4("127.0.0.2", 4789, &ss, &len);
  if ((e = dp_vtep_set(dp, 1, &ss, len))) die("VTEP 1", e);
  sa4("127.0.0.3", 4789, &ss, &len);
  if ((e = dp_vtep_set(dp, 2, &ss, len))) die("VTEP 2", e);
  if ((e = dp_tenant_accept(dp, 1, 1, true))) die("accept", e);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) != 0) die("socketpair", errno);
  if ((e = dp_port_set(dp, 1, 1, sv[0], 0))) die("port", e);
  if ((e = dp_fdb_set(dp, 1, frame, DP_FDB_VTEP, 2))) die("fdb dst", e);
}

static void tx_forget(struct dp_worker *w) { /* the queue, emptied unsent */
  w->ntx = 0;
  w->ntx_iov = 0;
  w->arena_used = 0;
}

/* One frame read from port 1 toward VTEP 2. */
__attribute__((noinline)) static void bench_sw_encap(void) {
  struct dp_worker *w = dp->encap;
  encap_frame(w, 1, &dp->ports[1], worker_buf(w, 0), FRAME_LEN, NULL);
  sink += w->ntx;
  tx_forget(w);
}

/* One VXLAN datagram from VTEP 1, relayed to VTEP 2 (re-encapsulated in place). */
__attribute__((noinline)) static void bench_sw_decap(void) {
  struct dp_worker *w = dp->decap;
  w->rx[0].msg_len = VXLAN_HLEN + FRAME_LEN;
  w->rx[0].msg_hdr.msg_flags = 0;
  w->rx[0].msg_hdr.msg_controllen = 0;
  decap_buffer(w, 0);
  sink += w->ntx;
  tx_forget(w);
}

static void prepare(void) {
  struct dp_worker *e = dp->encap, *d = dp->decap;
  e->now_ms = d->now_ms = (uint32_t)dp_now_ms();
  memcpy(worker_buf(e, 0), frame, sizeof frame);
  memset(worker_buf(e, 0) + sizeof frame, 0xab, 64);
  /* decap: a VXLAN datagram from VTEP 1 in receive buffer 0, from another source MAC */
  uint8_t *b = worker_buf(d, 0);
  struct vxlanhdr h;
  vxlan_hdr_build(&h, 5001);
  memcpy(b, &h, VXLAN_HLEN);
  memcpy(b + VXLAN_HLEN, frame, sizeof frame);
  b[VXLAN_HLEN + 11] = 0x02;
  memset(b + VXLAN_HLEN + sizeof frame, 0xab, 64);
  socklen_t len;
  sa4("127.0.0.2", 4789, &d->rx_name[0], &len);
  /* Both sources learned where they are seen: learning is a cache hit, no events. */
  int err;
  if ((err = dp_fdb_set(dp, 1, frame + 6, DP_FDB_PORT, 1))) die("fdb src", err);
  if ((err = dp_fdb_set(dp, 1, b + VXLAN_HLEN + 6, DP_FDB_VTEP, 1))) die("fdb src", err);
}

struct bench {
  const char *name;
  void (*fn)(void);
  const char *what;
};

static const struct bench benches[] = {
    {"sw_encap", bench_sw_encap, "port -> VTEP: encap_frame, queued (no send)"},
    {"sw_decap", bench_sw_decap, "VTEP -> VTEP (relay): decap_buffer, queued (no send)"},
};
#define NBENCH (sizeof benches / sizeof benches[0])

int main(int argc, char **argv) {
  setup();
  prepare();
  pthread_rwlock_rdlock(&dp->lock); /* as a fast-path thread holds it for a batch */
  if (argc == 3 && strcmp(argv[1], "--count") == 0) {
    long n = atol(argv[2]);
    for (size_t b = 0; b < NBENCH; b++)
      for (long i = 0; i < n; i++) benches[b].fn();
    for (size_t b = 0; b < NBENCH; b++) printf("%s %u\n", benches[b].name, 1u);
    return 0;
  }
  for (size_t b = 0; b < NBENCH; b++) {
    const struct bench *x = &benches[b];
    double best = best_ns_per_packet(x->fn, 1);
    printf("%-10s %12.1f %12s  %s\n", x->name, best, "", x->what);
  }
  return 0;
}
