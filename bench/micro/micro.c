/*
 * Micro-benchmark of the per-packet C routines of the fast path, outside the kernel:
 * checksum, VXLAN encap/decap, segmenting a TCP super-frame (gso_segment) and coalescing
 * its segments back (tcp_coalesce_*). Built by bench/micro/run.sh (not node-gyp) from the
 * same sources as the addon.
 *
 *   micro            ns per packet (best of 5 rounds, each ~0.2 s)
 *   micro --count N  run each routine N times exactly once, for valgrind --tool=callgrind:
 *                    instructions per packet = Ir of bench_<name> / (N * packets per call)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../native/csum.h"
#include "../../native/gso.h"
#include "../../native/packet.h"
#include "../../native/vxlan.h"
#include "bench.h"

#define MSS 1398
#define NSEG 44
#define HDR (14 + 20 + 32) /* Ethernet, IPv4, TCP with timestamps */
#define SUPER (HDR + NSEG * MSS)

static uint8_t super_frame[SUPER];
static struct vnet_hdr super_vh;
static uint8_t segs[NSEG][64 + HDR + MSS]; /* each with headroom for VXLAN */
static uint32_t seg_len[NSEG];
static uint8_t hdr_arena[NSEG * 128];
static volatile uint32_t sink;

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* A 64 KB TCP super-frame as a TAP with TSO hands it over (checksum field partial). */
static void build_super(void) {
  uint8_t *f = super_frame;
  memcpy(f, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", 14);
  uint8_t *ip = f + 14, *th = ip + 20;
  ip[0] = 0x45;
  put16(ip + 2, (uint16_t)(SUPER - 14));
  put16(ip + 4, 1000);
  put16(ip + 6, 0x4000);
  ip[8] = 64;
  ip[9] = 6;
  memcpy(ip + 12, "\x0a\x01\x00\x01\x0a\x01\x00\x02", 8);
  csum_field_set(ip + 10, csum_ip4_header(ip, 20));
  put16(th, 40000);
  put16(th + 2, 5201);
  put32(th + 4, 123456789);
  put32(th + 8, 987654321);
  th[12] = 8 << 4;
  th[13] = 0x18; /* ACK PSH */
  put16(th + 14, 512);
  memcpy(th + 20, "\x01\x01\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x02", 12);
  for (int i = HDR; i < SUPER; i++) f[i] = (uint8_t)(i * 131 + 7);
  uint32_t l4len = SUPER - 34;
  csum_field_set(th + 16, csum_fold16(csum_add(csum_pseudo4(ip + 12, ip + 16, 6, 0), csum_be32(l4len))));
  super_vh = (struct vnet_hdr){.flags = VNET_F_NEEDS_CSUM, .gso_type = VNET_GSO_TCPV4, .hdr_len = HDR,
                               .gso_size = MSS, .csum_start = 34, .csum_offset = 16};
  /* its segments, for the decap-side routines */
  static uint8_t out[NSEG * (HDR + MSS)];
  int err;
  unsigned n = tcp_segment(&super_vh, super_frame, SUPER, out, sizeof out, seg_len, NSEG, &err);
  if (n != NSEG) {
    fprintf(stderr, "micro: segmenting the test frame failed (%u, %d)\n", n, err);
    exit(1);
  }
  for (unsigned i = 0, off = 0; i < n; off += seg_len[i], i++) memcpy(segs[i] + 64, out + off, seg_len[i]);
  struct vxlanhdr t;
  vxlan_hdr_build(&t, 5001);
  vxlan_push(segs[9] + 64, &t); /* a received datagram for bench_decap */
}

/* ---- the routines, one noinline wrapper each (callgrind counts them by name) -------- */

/* Checksum of one MSS of payload. 1 packet per call. */
__attribute__((noinline)) static void bench_csum(void) { sink += csum_partial(super_frame + HDR, MSS, 0); }

/* Headers and checksums of all 44 segments of a super-frame (payload stays in place). NSEG packets per call. */
__attribute__((noinline)) static void bench_segment(void) {
  struct gso_plan plan;
  if (gso_plan(&super_vh, super_frame, SUPER, &plan) != GSO_OK) abort();
  gso_segment(&plan, super_frame, 0, plan.nseg, hdr_arena, 128);
  sink += hdr_arena[40];
}

/* Coalesce 44 segments into one GSO write (iovecs), then restore the first segment's
 * headers for the next round. NSEG packets per call. */
__attribute__((noinline)) static void bench_coalesce(void) {
  static struct coalescer c;
  uint8_t save[HDR];
  memcpy(save, segs[0] + 64, HDR);
  if (!tcp_coalesce_start(&c, segs[0] + 64, seg_len[0])) abort();
  for (int i = 1; i < NSEG; i++)
    if (!tcp_coalesce_add(&c, segs[i] + 64, seg_len[i])) abort();
  struct vnet_hdr vh;
  sink += coalesce_finish(&c, &vh);
  memcpy(segs[0] + 64, save, HDR);
}

/* Encap of one plain frame: flow hash (picks the source port) and VXLAN push. 1 packet per call. */
__attribute__((noinline)) static void bench_encap(void) {
  static struct vxlanhdr tmpl;
  if (!tmpl.flags) vxlan_hdr_build(&tmpl, 5001);
  uint8_t *f = segs[7] + 64;
  uint32_t h = flow_hash(f, seg_len[7]);
  uint8_t *pkt = vxlan_push(f, &tmpl);
  sink += h + pkt[4];
}

/* Decap of one datagram: VXLAN pop and header parse (what decides coalescing). 1 packet per call. */
__attribute__((noinline)) static void bench_decap(void) {
  uint32_t vni;
  uint8_t *pkt = segs[9] + 64 - VXLAN_HLEN;
  if (vxlan_pop(pkt, seg_len[9] + VXLAN_HLEN, &vni) != VXLAN_OK) abort();
  struct l34 h;
  sink += vni + (l34_parse(pkt + VXLAN_HLEN, seg_len[9], &h) ? h.hdr_len : 0);
}

/* Verify one segment's TCP checksum (the decap path does this for datagrams not checked by UDP GRO). */
__attribute__((noinline)) static void bench_verify(void) {
  struct l34 h;
  const uint8_t *f = segs[11] + 64;
  if (!l34_parse(f, seg_len[11], &h) || !l4_csum_ok(f, seg_len[11], &h)) abort();
  sink++;
}

struct bench {
  const char *name;
  void (*fn)(void);
  unsigned packets; /* per call */
  const char *what;
};

static const struct bench benches[] = {
    {"csum", bench_csum, 1, "Internet checksum of 1398 bytes (csum_partial)"},
    {"segment", bench_segment, NSEG, "TCP super-frame -> 44 segments: headers + checksums (gso_plan + gso_segment)"},
    {"coalesce", bench_coalesce, NSEG, "44 segments -> one GSO write (tcp_coalesce_start/add, coalesce_finish)"},
    {"verify", bench_verify, 1, "verify one segment's TCP checksum (l34_parse + l4_csum_ok)"},
    {"encap", bench_encap, 1, "plain frame: flow_hash + vxlan_push"},
    {"decap", bench_decap, 1, "datagram: vxlan_pop + l34_parse"},
};
#define NBENCH (sizeof benches / sizeof benches[0])

int main(int argc, char **argv) {
  build_super();
  if (argc == 3 && strcmp(argv[1], "--count") == 0) {
    long n = atol(argv[2]);
    for (size_t b = 0; b < NBENCH; b++)
      for (long i = 0; i < n; i++) benches[b].fn();
    for (size_t b = 0; b < NBENCH; b++) printf("%s %u\n", benches[b].name, benches[b].packets);
    return 0;
  }
  printf("%-10s %12s %12s  %s\n", "routine", "ns/packet", "Gbit/s", "what");
  for (size_t b = 0; b < NBENCH; b++) {
    const struct bench *x = &benches[b];
    double best = best_ns_per_packet(x->fn, x->packets);
    double bits = (double)(b == 0 ? MSS : HDR + MSS) * 8;
    printf("%-10s %12.1f %12.1f  %s\n", x->name, best, bits / best, x->what);
  }
  return 0;
}
