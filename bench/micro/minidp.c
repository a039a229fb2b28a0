/*
 * vtepd's C data path alone in a small process (#18): the experiment behind "the same data
 * path in a 4 MB process" in docs/performance.md. One tenant (VNI 5001), one TAP (created in
 * an endpoint namespace, with offloads), one VTEP, and a static FDB for both MACs: no
 * learning, no flooding, no JavaScript. Everything else (threads, batching, one thread per
 * light queue) is the addon's code, linked from native/.
 *
 *   minidp LOCAL PEER NETNS TAP TAP_MAC TAP_IPV4 REMOTE_MAC
 *
 * bench/micro/minilab.sh builds it and runs two of them across a veth, with pings.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fastpath.h"
#include "tap.h"

static void ignore_events(void *arg) { (void)arg; }

static int parse_mac(const char *s, uint8_t m[6]) {
  return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 ? 0 : -1;
}

static int parse_v4(const char *s, struct sockaddr_storage *ss) {
  struct sockaddr_in *a = (struct sockaddr_in *)ss;
  memset(ss, 0, sizeof *ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(4789);
  return inet_pton(AF_INET, s, &a->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
  struct dp_config cfg = {0};
  struct sockaddr_storage peer;
  struct tap_config tc = {0};
  uint8_t remote[6];
  if (argc != 8 || parse_v4(argv[1], &cfg.local) || parse_v4(argv[2], &peer) || parse_mac(argv[5], tc.mac) ||
      parse_mac(argv[7], remote) || inet_pton(AF_INET, argv[6], &tc.ipv4) != 1) {
    fprintf(stderr, "usage: minidp LOCAL PEER NETNS TAP TAP_MAC TAP_IPV4 REMOTE_MAC\n");
    return 2;
  }
  cfg.local_len = sizeof(struct sockaddr_in);
  cfg.source_ports = 1;
  struct dp *dp;
  const char *step = "";
  int err = dp_create(&cfg, &dp, &step);
  if (err) {
    fprintf(stderr, "minidp: %s: %s\n", step, strerror(err));
    return 1;
  }
  tc.name = argv[4];
  tc.netns = argv[3];
  tc.mtu = 1450;
  tc.has_mac = tc.has_ipv4 = tc.up = tc.offloads = true;
  tc.prefix_len = 24;
  struct tap_result tr;
  if ((err = tap_open(&tc, &tr))) {
    fprintf(stderr, "minidp: TAP: %s: %s\n", tr.step, strerror(err));
    return 1;
  }
  if ((err = dp_tenant_set(dp, 1, 5001)) || (err = dp_port_set(dp, 1, 1, tr.fd, tr.vnet_hdr)) ||
      (err = dp_vtep_set(dp, 1, &peer, sizeof(struct sockaddr_in))) || (err = dp_tenant_accept(dp, 1, 1, true)) ||
      (err = dp_fdb_set(dp, 1, remote, DP_FDB_VTEP, 1)) || (err = dp_fdb_set(dp, 1, tc.mac, DP_FDB_PORT, 1)) ||
      (err = dp_start(dp, ignore_events, NULL))) {
    fprintf(stderr, "minidp: %s (%s)\n", strerror(err), dp_last_error(dp));
    return 1;
  }
  printf("minidp: running\n");
  fflush(stdout);
  for (;;) pause();
}
