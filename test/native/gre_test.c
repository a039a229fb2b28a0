/*
 * Unit tests of native/gre.c (and native/rawip.c with the argument "rawip"), built with
 * cc and run by test/native/gre-raw.test.ts. Prints TAP ("ok N - name" / "not ok N - name")
 * and exits 1 if anything failed. Every packet lives in a heap buffer of exactly its
 * length, so a read past the end is caught when built with -fsanitize=address.
 *
 *   gre_test          header tests (pure, no privileges)
 *   gre_test rawip    raw IPPROTO_GRE sockets over loopback, IPv4 and IPv6 (run it inside
 *                     a fresh network namespace: it needs CAP_NET_RAW and lo up)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gre.h"
#include "rawip.h"

static int n_test, n_fail;

static void check(int ok, const char *name) {
  n_test++;
  if (!ok) n_fail++;
  printf("%sok %d - %s\n", ok ? "" : "not ", n_test, name);
}

/* A heap copy of exactly len bytes (ASan catches any read beyond). */
static uint8_t *exact(const uint8_t *src, size_t len) {
  uint8_t *p = malloc(len ? len : 1);
  if (len) memcpy(p, src, len);
  return p;
}

static enum gre_pop_result pop(const uint8_t *src, size_t len, struct gre_info *info) {
  uint8_t *p = exact(src, len);
  enum gre_pop_result r = gre_pop(p, len, info);
  free(p);
  return r;
}

static void expect_pop(const uint8_t *src, size_t len, enum gre_pop_result want, const char *name) {
  struct gre_info info;
  enum gre_pop_result got = pop(src, len, &info);
  char buf[200];
  snprintf(buf, sizeof buf, "%s: %s (want %s)", name, gre_pop_result_name(got), gre_pop_result_name(want));
  check(got == want, buf);
}

/* An Ethernet frame of `len` bytes (>= 14) with EtherType `type`. */
static size_t frame(uint8_t *out, size_t len, uint16_t type) {
  static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
  memcpy(out, dst, 6);
  memcpy(out + 6, src, 6);
  out[12] = (uint8_t)(type >> 8);
  out[13] = (uint8_t)type;
  for (size_t i = 14; i < len; i++) out[i] = (uint8_t)(i * 7);
  return len;
}

/* A GRE packet: first word, protocol, optional words, then an IPv4-typed frame of flen bytes. */
static size_t gre_pkt(uint8_t *out, uint16_t w0, uint16_t proto, uint32_t key, uint32_t seq, size_t flen) {
  size_t o = 0;
  out[o++] = (uint8_t)(w0 >> 8);
  out[o++] = (uint8_t)w0;
  out[o++] = (uint8_t)(proto >> 8);
  out[o++] = (uint8_t)proto;
  size_t csum_at = o;
  if (w0 & GRE_F_CSUM) { memset(out + o, 0, 4); o += 4; }
  if (w0 & GRE_F_KEY) { uint32_t k = htonl(key); memcpy(out + o, &k, 4); o += 4; }
  if (w0 & GRE_F_SEQ) { uint32_t s = htonl(seq); memcpy(out + o, &s, 4); o += 4; }
  o += frame(out + o, flen, 0x0800);
  if (w0 & GRE_F_CSUM) {
    uint16_t c = gre_checksum(out, o);
    out[csum_at] = (uint8_t)(c >> 8);
    out[csum_at + 1] = (uint8_t)c;
  }
  return o;
}

static void test_push(void) {
  uint8_t buf[64 + 14];
  struct gre_key_hdr h;
  gre_hdr_build(&h, 5001);
  uint8_t *f = buf + 64;
  frame(f, 14, 0x0800);
  uint8_t *p = gre_push(f, &h);
  static const uint8_t want[8] = {0x20, 0x00, 0x65, 0x58, 0x00, 0x00, 0x13, 0x89};
  check(p == f - 8 && memcmp(p, want, 8) == 0, "gre_push: K set, proto 0x6558, key 5001, 8 bytes in the headroom");
  struct gre_info info;
  check(pop(p, 8 + 14, &info) == GRE_OK && info.key == 5001 && info.hlen == 8 && info.proto == 0x6558,
        "gre_pop of gre_push: key 5001, hlen 8");

  nvgre_hdr_build(&h, 0x123456);
  p = nvgre_push(f, &h, 0xab);
  static const uint8_t want_nv[8] = {0x20, 0x00, 0x65, 0x58, 0x12, 0x34, 0x56, 0xab};
  check(memcmp(p, want_nv, 8) == 0, "nvgre_push: key = VSID 0x123456 << 8 | FlowID 0xab");
  uint32_t vsid = 0;
  uint8_t flow = 0;
  uint8_t *c = exact(p, 8 + 14);
  check(nvgre_pop(c, 8 + 14, &info, &vsid, &flow) == GRE_OK && vsid == 0x123456 && flow == 0xab,
        "nvgre_pop: VSID 0x123456, FlowID 0xab");
  free(c);
}

static void test_pop(void) {
  uint8_t pkt[2048];
  size_t n;
  struct gre_info info;

  n = gre_pkt(pkt, GRE_F_KEY, GRE_PROTO_TEB, 0xdeadbeef, 0, 60);
  check(pop(pkt, n, &info) == GRE_OK && info.key == 0xdeadbeef && info.hlen == 8, "good: K, 32-bit key 0xdeadbeef");
  n = gre_pkt(pkt, GRE_F_KEY, GRE_PROTO_TEB, 7, 0, 0);
  expect_pop(pkt, 8, GRE_OK, "good: header only (the inner frame length is the caller's check)");

  /* Truncated: every length below the announced header. */
  n = gre_pkt(pkt, GRE_F_KEY, GRE_PROTO_TEB, 7, 0, 14);
  for (size_t len = 0; len < 8; len++) {
    char name[80];
    snprintf(name, sizeof name, "truncated: K header cut to %zu bytes", len);
    expect_pop(pkt, len, GRE_TRUNCATED, name);
  }
  n = gre_pkt(pkt, GRE_F_CSUM | GRE_F_KEY | GRE_F_SEQ, GRE_PROTO_TEB, 7, 9, 14);
  expect_pop(pkt, 15, GRE_TRUNCATED, "truncated: C+K+S announce 16 bytes, 15 present");
  expect_pop(pkt, 0, GRE_TRUNCATED, "truncated: empty");

  /* Version. */
  for (uint16_t v = 1; v <= 7; v++) {
    n = gre_pkt(pkt, GRE_F_KEY | v, GRE_PROTO_TEB, 7, 0, 14);
    char name[80];
    snprintf(name, sizeof name, "bad version %u", v);
    expect_pop(pkt, n, GRE_BAD_VERSION, name);
  }
  /* Reserved bits: 1, 4, 5 discard; 6..12 ignored. */
  static const struct { uint16_t bit; const char *name; } must_zero[] = {
      {0x4000, "bit 1 (RFC 1701 routing) set"}, {0x0800, "bit 4 (strict source route) set"}, {0x0400, "bit 5 (recursion) set"}};
  for (size_t i = 0; i < 3; i++) {
    n = gre_pkt(pkt, GRE_F_KEY | must_zero[i].bit, GRE_PROTO_TEB, 7, 0, 14);
    char name[80];
    snprintf(name, sizeof name, "reserved: %s", must_zero[i].name);
    expect_pop(pkt, n, GRE_RESERVED, name);
  }
  for (int b = 6; b <= 12; b++) {
    n = gre_pkt(pkt, (uint16_t)(GRE_F_KEY | (0x8000 >> b)), GRE_PROTO_TEB, 7, 0, 14);
    char name[80];
    snprintf(name, sizeof name, "reserved bit %d is ignored on receipt", b);
    expect_pop(pkt, n, GRE_OK, name);
  }

  /* Protocol type. */
  n = gre_pkt(pkt, GRE_F_KEY, 0x0800, 7, 0, 14);
  expect_pop(pkt, n, GRE_BAD_PROTO, "protocol 0x0800 (IPv4), not Ethernet");
  n = gre_pkt(pkt, GRE_F_KEY, 0x88be, 7, 0, 14);
  expect_pop(pkt, n, GRE_BAD_PROTO, "protocol 0x88be (ERSPAN), not Ethernet");

  /* Checksum: even and odd payloads, right and wrong. */
  for (size_t flen = 60; flen <= 61; flen++) {
    n = gre_pkt(pkt, GRE_F_CSUM | GRE_F_KEY, GRE_PROTO_TEB, 42, 0, flen);
    char name[80];
    snprintf(name, sizeof name, "checksum present and right (%zu-byte frame)", flen);
    check(pop(pkt, n, &info) == GRE_OK && info.hlen == 12 && info.key == 42, name);
    pkt[n - 1] ^= 0x01;
    snprintf(name, sizeof name, "checksum present, payload bit flipped (%zu-byte frame)", flen);
    expect_pop(pkt, n, GRE_BAD_CHECKSUM, name);
  }
  n = gre_pkt(pkt, GRE_F_CSUM | GRE_F_KEY, GRE_PROTO_TEB, 42, 0, 60);
  pkt[4] ^= 0xff;
  expect_pop(pkt, n, GRE_BAD_CHECKSUM, "checksum field itself wrong");

  /* Sequence: parsed to its full length, then dropped by policy. */
  n = gre_pkt(pkt, GRE_F_KEY | GRE_F_SEQ, GRE_PROTO_TEB, 42, 77, 14);
  check(pop(pkt, n, &info) == GRE_SEQUENCED && info.hlen == 12 && info.seq == 77 && info.key == 42,
        "S set: parsed (key 42, seq 77, hlen 12) and refused as sequenced");
  /* Key. */
  n = gre_pkt(pkt, 0, GRE_PROTO_TEB, 0, 0, 14);
  expect_pop(pkt, n, GRE_NO_KEY, "no key (K clear)");
  n = gre_pkt(pkt, GRE_F_CSUM, GRE_PROTO_TEB, 0, 0, 14);
  check(pop(pkt, n, &info) == GRE_NO_KEY && info.hlen == 8, "no key, checksum present and right: hlen 8, refused for the key");
}

static void test_nvgre(void) {
  uint8_t pkt[256];
  size_t n;
  struct gre_info info;
  uint32_t vsid;
  uint8_t flow;
  struct { uint16_t w0; enum gre_pop_result want; const char *name; } cases[] = {
      {GRE_F_KEY | GRE_F_CSUM, GRE_NVGRE_FLAGS, "NVGRE with C set"},
      {GRE_F_KEY | GRE_F_SEQ, GRE_NVGRE_FLAGS, "NVGRE with S set"},
      {0, GRE_NVGRE_FLAGS, "NVGRE with K clear"},
      {GRE_F_KEY | 1, GRE_BAD_VERSION, "NVGRE with version 1"},
      {GRE_F_KEY | 0x4000, GRE_RESERVED, "NVGRE with bit 1 set"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    n = gre_pkt(pkt, cases[i].w0, GRE_PROTO_TEB, 0x00100001, 0, 14);
    uint8_t *c = exact(pkt, n);
    enum gre_pop_result r = nvgre_pop(c, n, &info, &vsid, &flow);
    free(c);
    char name[120];
    snprintf(name, sizeof name, "%s: %s", cases[i].name, gre_pop_result_name(r));
    check(r == cases[i].want, name);
  }
  for (int t = 0; t < 2; t++) {
    uint16_t type = t ? 0x88A8 : 0x8100;
    n = gre_pkt(pkt, GRE_F_KEY, GRE_PROTO_TEB, 0x00100001, 0, 18);
    pkt[8 + 12] = (uint8_t)(type >> 8);
    pkt[8 + 13] = (uint8_t)type;
    uint8_t *c = exact(pkt, n);
    char name[80];
    snprintf(name, sizeof name, "NVGRE inner frame tagged 0x%04x is refused", type);
    check(nvgre_pop(c, n, &info, &vsid, &flow) == GRE_NVGRE_VLAN, name);
    free(c);
  }
  n = gre_pkt(pkt, GRE_F_KEY, GRE_PROTO_TEB, 0x00100001, 0, 14);
  uint8_t *c = exact(pkt, 8 + 5);
  check(nvgre_pop(c, 8 + 5, &info, &vsid, &flow) == GRE_OK && vsid == 0x1000 && flow == 1,
        "NVGRE with a runt inner frame: header OK, VSID 0x1000, FlowID 1 (runt is the caller's drop)");
  free(c);
}

/* Random headers over random lengths: never a read past the end, hlen <= len on OK. */
static void test_fuzz(void) {
  uint32_t x = 0x12345678;
  int bad = 0;
  for (int i = 0; i < 200000; i++) {
    uint8_t raw[40];
    for (size_t j = 0; j < sizeof raw; j++) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      raw[j] = (uint8_t)x;
    }
    /* Bias toward plausible first words so deep paths are reached. */
    raw[0] &= (i & 1) ? 0xB0 : 0xFF;
    raw[1] &= (i & 2) ? 0x00 : 0xFF;
    if (i & 4) raw[2] = 0x65, raw[3] = 0x58;
    size_t len = x % sizeof raw;
    uint8_t *c = exact(raw, len);
    struct gre_info info;
    uint32_t vsid;
    uint8_t flow;
    enum gre_pop_result r = gre_pop(c, len, &info);
    if (r == GRE_OK && info.hlen > len) bad++;
    r = nvgre_pop(c, len, &info, &vsid, &flow);
    if (r == GRE_OK && info.hlen > len) bad++;
    free(c);
  }
  check(bad == 0, "fuzz: 200000 random headers, no OK with a header longer than the packet");
}

static void test_checksum(void) {
  static const uint8_t rfc1071[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  /* RFC 1071 §3 example: the sum is 0xddf2, so the checksum is its complement. */
  check(gre_checksum(rfc1071, 8) == (uint16_t)~0xddf2, "gre_checksum: RFC 1071 section 3 example");
}

/* --- raw sockets ------------------------------------------------------------------- */

static int raw_roundtrip(int family, const char *addr) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (family == AF_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    inet_pton(AF_INET, addr, &s->sin_addr);
    sl = sizeof *s;
  } else {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_family = AF_INET6;
    inet_pton(AF_INET6, addr, &s->sin6_addr);
    sl = sizeof *s;
  }
  int fd;
  const char *step = "";
  int err = rawip_open(&ss, sl, IPPROTO_GRE_NUMBER, &fd, &step);
  if (err) {
    printf("# rawip_open %s: %s: %s\n", addr, step, strerror(err));
    return 0;
  }
  uint8_t pkt[128];
  size_t n = gre_pkt(pkt, GRE_F_KEY, GRE_PROTO_TEB, 5001, 0, 60);
  int ok = 0;
  if (sendto(fd, pkt, n, 0, (struct sockaddr *)&ss, sl) != (ssize_t)n) {
    printf("# sendto %s: %s\n", addr, strerror(errno));
  } else {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint8_t in[2048];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t got = poll(&p, 1, 2000) == 1 ? recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&from, &fl) : -1;
    size_t off, plen;
    struct gre_info info;
    if (got > 0 && rawip_payload(family, in, (size_t)got, &off, &plen) == 0 && plen == n &&
        gre_pop(in + off, plen, &info) == GRE_OK && info.key == 5001 && from.ss_family == family)
      ok = 1;
    else
      printf("# %s: received %zd bytes\n", addr, got);
  }
  close(fd);
  return ok;
}

static void test_rawip(void) {
  check(raw_roundtrip(AF_INET, "127.0.0.1"), "raw IPv4 GRE socket: send to 127.0.0.1, receive, strip the IP header, gre_pop");
  check(raw_roundtrip(AF_INET6, "::1"), "raw IPv6 GRE socket: send to ::1, receive (no IP header), gre_pop");
  uint8_t bad[20] = {0x46};
  size_t off, plen;
  check(rawip_payload(AF_INET, bad, sizeof bad, &off, &plen) == EBADMSG, "rawip_payload: IHL beyond the packet");
  uint8_t v6[20] = {0x45, 0, 0, 20};
  check(rawip_payload(AF_INET, v6, sizeof v6, &off, &plen) == 0 && off == 20 && plen == 0, "rawip_payload: bare IPv4 header");
  v6[0] = 0x65;
  check(rawip_payload(AF_INET, v6, sizeof v6, &off, &plen) == EBADMSG, "rawip_payload: version 6 on an IPv4 socket");
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "rawip") == 0) {
    test_rawip();
  } else {
    test_push();
    test_pop();
    test_nvgre();
    test_checksum();
    test_fuzz();
  }
  printf("1..%d\n", n_test);
  if (n_fail) printf("# %d of %d failed\n", n_fail, n_test);
  return n_fail ? 1 : 0;
}
