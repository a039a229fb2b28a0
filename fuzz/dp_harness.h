/*
 * The real fast path without its threads: the fuzz targets fuzz_decap and fuzz_encap link
 * the data path's objects (fuzz/run.mjs) and call its per-batch functions (decap_buffer,
 * decap_gre_packet, encap_frame, tx_flush, gro_flush; declared in native/dp_private.h)
 * directly on one worker, exactly as decap_main/encap_port do after recvmmsg/read, over a
 * data path built through its public control API.
 *
 * The process first moves into a network namespace of its own (unshare, when allowed):
 * its underlay sockets and VTEPs live on that namespace's loopback, and nothing it sends
 * can leave it.
 *
 * The switch the targets run against (four tenants, two VTEPs, four ports, a few FDB
 * entries; the same MAC in several tenants):
 *
 *   tenant 1  VNI 5001      VXLAN          accepts VTEP 1 only   ports 1 (vnet hdr), 2 (plain)
 *   tenant 2  VNI 5002      VXLAN          accepts any source    port 3 (vnet hdr)
 *   tenant 3  VNI 0x123456  VXLAN + NVGRE  accepts VTEPs 2, 4    port 4 (plain)
 *   tenant 4  VNI 7         GRE-TAP        accepts VTEP 3        port 5 (plain)
 *   VTEP 1 = 127.0.0.2:4789, VTEP 2 = 127.0.0.3:4789 (VXLAN); VTEP 3 = 127.0.0.2 GRE-TAP,
 *   VTEP 4 = 127.0.0.3 NVGRE; the data path is 127.0.0.1:4789 (and its raw GRE socket).
 *   FDB  t1: 02:00:00:00:01:01 -> port 1, 02:00:00:00:01:02 -> port 2, 02:00:00:00:01:99 -> VTEP 1
 *        t2: 02:00:00:00:01:01 -> port 3, 02:00:00:00:02:99 -> VTEP 2
 *        t3: 02:00:00:00:01:01 -> port 4, 02:00:00:00:03:99 -> VTEP 2
 *        t4: 02:00:00:00:01:01 -> port 5
 */
#ifndef VTEPD_FUZZ_DP_HARNESS_H
#define VTEPD_FUZZ_DP_HARNESS_H

#include <endian.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dp_private.h"
#include "rawip.h"
#include "udp.h"

#include "ref.h"

#define H_TENANTS 4
#define H_PORTS 5
#define H_VTEPS 2 /* VXLAN VTEPs, with a receiver each (fuzz_encap); 3 and 4 are GRE/NVGRE */

static const uint32_t h_vni[H_TENANTS + 1] = {0, 5001, 5002, 0x123456, 7};
static const uint32_t h_port_tenant[H_PORTS + 1] = {0, 1, 1, 2, 3, 4};
static const int h_port_vnet[H_PORTS + 1] = {0, 1, 0, 1, 0, 0};
static const char *const h_vtep_addr[H_VTEPS + 1] = {NULL, "127.0.0.2", "127.0.0.3"};

struct harness {
  struct dp *dp;
  int port_peer[H_PORTS + 1]; /* our end of each port's socketpair */
  int vtep_rx[H_VTEPS + 1];   /* what the data path sends to VTEP i arrives here */
  uint8_t *buf;               /* one frame read back */
  bool gre;                   /* the data path has its GRE socket: tenants 3 and 4 take GRE */
};

static struct harness H;

static void h_die(const char *what, int err) {
  fprintf(stderr, "fuzz harness: %s: %s\n", what, strerror(err));
  abort();
}

static void h_lo_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  if (s >= 0) close(s);
}

static void h_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  int e = sockaddr_from_string(ip, port, ss, len);
  if (e) h_die(ip, e);
}

static void h_setup(void) {
  if (H.dp) return;
  if (unshare(CLONE_NEWNET) != 0) fprintf(stderr, "fuzz harness: unshare(CLONE_NEWNET): %s; using this namespace's loopback\n", strerror(errno));
  h_lo_up();
  struct dp_config cfg;
  memset(&cfg, 0, sizeof cfg);
  h_sockaddr("127.0.0.1", 4789, &cfg.local, &cfg.local_len);
  cfg.source_ports = 2;
  cfg.gre = true; /* the raw GRE socket (needs root: retried without it below) */
  const char *step = "?";
  int e = dp_create(&cfg, &H.dp, &step);
  if (e && cfg.gre) {
    fprintf(stderr, "fuzz harness: %s: %s; no GRE\n", step, strerror(e));
    cfg.gre = false;
    e = dp_create(&cfg, &H.dp, &step);
  }
  if (e) h_die(step, e);
  for (uint32_t t = 1; t <= H_TENANTS; t++)
    if ((e = dp_tenant_set(H.dp, t, h_vni[t]))) h_die(dp_last_error(H.dp), e);
  for (uint32_t v = 1; v <= H_VTEPS; v++) {
    struct sockaddr_storage ss;
    socklen_t len;
    h_sockaddr(h_vtep_addr[v], 4789, &ss, &len);
    if ((e = dp_vtep_set(H.dp, v, &ss, len))) h_die(dp_last_error(H.dp), e);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int big = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0) h_die("bind VTEP receiver", errno);
    H.vtep_rx[v] = fd;
  }
  if ((e = dp_tenant_accept(H.dp, 1, 1, true))) h_die(dp_last_error(H.dp), e);
  if ((e = dp_tenant_accept_any(H.dp, 2, true))) h_die(dp_last_error(H.dp), e);
  if ((e = dp_tenant_accept(H.dp, 3, 2, true))) h_die(dp_last_error(H.dp), e);
  /* GRE-TAP and NVGRE, where the raw GRE socket could be opened (root). */
  H.gre = dp_tenant_encaps(H.dp, 4, DP_ENCAP_BIT(DP_ENCAP_GRE)) == 0 &&
          dp_tenant_encaps(H.dp, 3, DP_ENCAP_BIT(DP_ENCAP_VXLAN) | DP_ENCAP_BIT(DP_ENCAP_NVGRE)) == 0;
  if (H.gre) {
    for (uint32_t v = 3; v <= 4; v++) {
      struct sockaddr_storage ss;
      socklen_t len;
      h_sockaddr(h_vtep_addr[v - 2], 0, &ss, &len);
      struct dp_vtep_opts o = {.encap = v == 3 ? DP_ENCAP_GRE : DP_ENCAP_NVGRE};
      if ((e = dp_vtep_set_ex(H.dp, v, &ss, len, &o))) h_die(dp_last_error(H.dp), e);
    }
    if ((e = dp_tenant_accept(H.dp, 4, 3, true)) || (e = dp_tenant_accept(H.dp, 3, 4, true))) h_die(dp_last_error(H.dp), e);
  } else {
    fprintf(stderr, "fuzz harness: no GRE socket (%s); GRE packets are not switched\n", dp_last_error(H.dp));
  }
  for (uint32_t p = 1; p <= H_PORTS; p++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) != 0) h_die("socketpair", errno);
    int big = 8 << 20;
    for (int k = 0; k < 2; k++) {
      setsockopt(sv[k], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
      setsockopt(sv[k], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    }
    if ((e = dp_port_set(H.dp, p, h_port_tenant[p], sv[0], h_port_vnet[p]))) h_die(dp_last_error(H.dp), e);
    H.port_peer[p] = sv[1];
  }
  static const struct { uint32_t t; uint8_t last2[2]; uint8_t kind; uint32_t id; } fdb[] = {
      {1, {0x01, 0x01}, DP_FDB_PORT, 1}, {1, {0x01, 0x02}, DP_FDB_PORT, 2}, {1, {0x01, 0x99}, DP_FDB_VTEP, 1},
      {2, {0x01, 0x01}, DP_FDB_PORT, 3}, {2, {0x02, 0x99}, DP_FDB_VTEP, 2},
      {3, {0x01, 0x01}, DP_FDB_PORT, 4}, {3, {0x03, 0x99}, DP_FDB_VTEP, 2},
      {4, {0x01, 0x01}, DP_FDB_PORT, 5},
  };
  for (size_t i = 0; i < sizeof fdb / sizeof fdb[0]; i++) {
    uint8_t mac[6] = {0x02, 0, 0, 0, fdb[i].last2[0], fdb[i].last2[1]};
    if ((e = dp_fdb_set(H.dp, fdb[i].t, mac, fdb[i].kind, fdb[i].id))) h_die(dp_last_error(H.dp), e);
  }
  H.buf = malloc(DP_BUF_SIZE);
}

static uint32_t h_tenant_of_vni(uint32_t vni) {
  for (uint32_t t = 1; t <= H_TENANTS; t++)
    if (h_vni[t] == vni) return t;
  return 0;
}

/* Does tenant t accept encapsulated frames from VTEP v (0: an unknown source)? */
static int h_accepts(uint32_t t, uint32_t v) {
  return t == 2 || (t == 1 && v == 1) || (t == 3 && (v == 2 || v == 4)) || (t == 4 && v == 3);
}

/* Read everything waiting on fd; fn(frame, len) for each. */
static void h_drain(int fd, void (*fn)(const uint8_t *, size_t, void *), void *arg) {
  for (;;) {
    ssize_t n = recv(fd, H.buf, DP_BUF_SIZE, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    fn(H.buf, (size_t)n, arg);
  }
}

/* Every event record queued since the last call: well formed, of an allowed tenant. */
static void h_check_events(uint32_t allowed_tenants, int from_port) {
  const uint8_t *d;
  size_t len;
  dp_events_take(H.dp, &d, &len);
  size_t off = 0;
  while (off < len) {
    FUZZ_CHECK(len - off >= DP_EVENT_HEADER, "event record cut at %zu of %zu", off, len);
    struct dp_event_hdr h;
    memcpy(&h, d + off, sizeof h);
    uint32_t rec = le32toh(h.rec_len), flen = le32toh(h.frame_len), t = le32toh(h.tenant_id);
    FUZZ_CHECK(rec >= DP_EVENT_HEADER && rec % 8 == 0 && rec <= len - off, "event rec_len %u", rec);
    if (h.type == DP_EV_CONTROL || h.type == DP_EV_SECURE) { /* liveness or handshake from the underlay: no tenant, its payload */
      FUZZ_CHECK(!from_port && t == 0 && flen >= 4 && flen <= rec - DP_EVENT_HEADER, "control event from_port %d tenant %u len %u", from_port, t, flen);
      const uint8_t *p = d + off + DP_EVENT_HEADER;
      FUZZ_CHECK(memcmp(p, "\0VTP", 4) == 0 || (h.type == DP_EV_CONTROL && sec_is_handshake(p, flen)), "control event neither liveness nor handshake");
      FUZZ_CHECK(h.type == DP_EV_CONTROL || h.in_kind == DP_IN_VTEP, "secure event not from a VTEP");
      off += rec;
      continue;
    }
    if (h.type == DP_EV_KEY_USED || h.type == DP_EV_ENDPOINT) { /* only after a packet authenticated */
      FUZZ_CHECK(!from_port && t == 0 && flen == 0 && h.in_kind == DP_IN_VTEP && le32toh(h.in_id) != 0, "key event");
      off += rec;
      continue;
    }
    FUZZ_CHECK(h.type == DP_EV_LEARN || h.type == DP_EV_MISS, "event type %u", h.type);
    FUZZ_CHECK(flen <= rec - DP_EVENT_HEADER && (h.type == DP_EV_MISS ? flen >= PKT_ETH_HLEN : flen == 0), "event frame_len %u", flen);
    FUZZ_CHECK(t >= 1 && t <= H_TENANTS && (allowed_tenants >> t & 1), "event for tenant %u, allowed %x", t, allowed_tenants);
    FUZZ_CHECK(!eth_is_multicast(h.src_mac) && !eth_is_zero(h.src_mac), "event with a multicast or zero source MAC");
    if (h.type == DP_EV_MISS) FUZZ_CHECK(memcmp(d + off + DP_EVENT_HEADER + 6, h.src_mac, 6) == 0, "event source MAC differs from its frame's");
    if (from_port) FUZZ_CHECK(h.in_kind == DP_IN_PORT && h_port_tenant[le32toh(h.in_id)] == t, "event from port %u of tenant %u", le32toh(h.in_id), t);
    else FUZZ_CHECK(h.in_kind == DP_IN_VTEP || h.in_kind == DP_IN_UNKNOWN_VTEP, "event in_kind %u", h.in_kind);
    off += rec;
  }
}

/* A frame a port received: a sane Ethernet frame (after its virtio_net_hdr, if any). */
static const uint8_t *h_port_frame(uint32_t p, const uint8_t *d, size_t n, size_t *flen, struct vnet_hdr *vh) {
  memset(vh, 0, sizeof *vh);
  if (h_port_vnet[p]) {
    FUZZ_CHECK(n >= VNET_HDR_LEN, "port %u got %zu bytes, less than a virtio_net_hdr", p, n);
    memcpy(vh, d, VNET_HDR_LEN);
    d += VNET_HDR_LEN;
    n -= VNET_HDR_LEN;
  }
  FUZZ_CHECK(n >= PKT_ETH_HLEN, "port %u got a %zu-byte frame", p, n);
  *flen = n;
  return d;
}

#endif
