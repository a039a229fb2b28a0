/*
 * Unit tests of the decap thread answering the reply (#18, native/fastpath.c reply_ports,
 * native/dp_tx.c reply_hold), built with cc and run by test/native/reply.test.ts. The real
 * data path without its threads (fuzz/dp_harness.h: ports are socketpairs, VTEPs UDP
 * sockets on a namespace's loopback); the test calls, on the workers, what decap_batch and
 * encap_port do, and (6) what a light queue merged into one thread does (queue_merge,
 * merged_read, queue_split). Prints TAP ("ok N - name") and exits 1 if anything failed.
 */
#include <sys/epoll.h>

#include "../../fuzz/dp_harness.h"

static int n_test, n_fail;

static void check(int ok, const char *name) {
  n_test++;
  if (!ok) n_fail++;
  printf("%sok %d - %s\n", ok ? "" : "not ", n_test, name);
}

/* A frame of tenant 1 from port 2's endpoint (02:..:01:02) to the VTEP's 02:..:01:99, payload "r<i>". */
static size_t reply_frame(uint8_t *f, unsigned i) {
  static const uint8_t dst[6] = {2, 0, 0, 0, 1, 0x99}, src[6] = {2, 0, 0, 0, 1, 2};
  memcpy(f, dst, 6);
  memcpy(f + 6, src, 6);
  f[12] = 0x88, f[13] = 0xb5; /* local experimental EtherType */
  return 14 + (size_t)sprintf((char *)f + 14, "r%u", i) + 1;
}

/* The endpoint behind port 2 answers: frames r<from>..r<to-1> wait on the port. */
static void endpoint_answers(unsigned from, unsigned to) {
  uint8_t f[64];
  for (unsigned i = from; i < to; i++)
    if (write(H.port_peer[2], f, reply_frame(f, i)) < 0) h_die("write to port 2", errno);
}

/* What VTEP 1 received since last time: the inner frames' payload numbers, in order. */
static unsigned vtep1_got(int *out, unsigned max) {
  unsigned n = 0;
  uint8_t b[2048];
  ssize_t r;
  while ((r = recv(H.vtep_rx[1], b, sizeof b, MSG_DONTWAIT)) > 0)
    if (r > 8 + 14 + 1 && b[8 + 14] == 'r' && n < max) out[n++] = atoi((char *)b + 8 + 14 + 1);
  return n;
}

/* A VXLAN datagram from VTEP 1 (127.0.0.2) to the data path: tenant 1, toward port 2. */
static void vtep1_sends_request(void) {
  uint8_t d[8 + 64];
  memset(d, 0, sizeof d);
  d[0] = 0x08;
  d[4] = 5001 >> 16, d[5] = (5001 >> 8) & 0xff, d[6] = 5001 & 0xff;
  static const uint8_t dst[6] = {2, 0, 0, 0, 1, 2}, src[6] = {2, 0, 0, 0, 1, 0x99};
  memcpy(d + 8, dst, 6);
  memcpy(d + 14, src, 6);
  d[20] = 0x88, d[21] = 0xb5;
  struct sockaddr_storage to;
  socklen_t tolen;
  h_sockaddr("127.0.0.1", 4789, &to, &tolen);
  if (sendto(H.vtep_rx[1], d, sizeof d, 0, (struct sockaddr *)&to, tolen) != (ssize_t)sizeof d) h_die("sendto", errno);
}

/*
 * One decap batch as decap_batch runs it under light load: the ports it writes to held
 * (reply_on), the datagram switched, the sends flushed, then reply_ports.
 */
static void decap_batch_light(struct dp_worker *w, bool read) {
  w->reply_on = true;
  w->rx[0].msg_hdr.msg_namelen = sizeof w->rx_name[0];
  w->rx[0].msg_hdr.msg_controllen = sizeof w->rx_cmsg[0].buf;
  int n;
  for (int tries = 0; (n = recvmmsg(H.dp->rx_fd, w->rx, 1, MSG_DONTWAIT, NULL)) <= 0 && tries < 1000; tries++) usleep(1000);
  if (n == 1) decap_buffer(w, 0);
  tx_flush(w);
  gro_flush(w);
  reply_ports(w, read);
}

/* The request the decap batch wrote to port 2, taken off the endpoint's side. */
static bool endpoint_got_request(void) {
  uint8_t b[2048];
  return recv(H.port_peer[2], b, sizeof b, MSG_DONTWAIT) > 0;
}

static uint64_t ctr(struct dp_worker *w, enum dp_counter c) { return ctr_get(&w->stats.c[c]); }

int main(void) {
  h_setup();
  struct dp_worker *de = H.dp->q_decap[0], *en = H.dp->q_encap[0];
  struct dp_port *p2 = &H.dp->ports[2];
  int got[64];

  /* 1. The endpoint's answers wait on the port when the request's write returns. */
  endpoint_answers(0, 3);
  vtep1_sends_request();
  decap_batch_light(de, true);
  check(endpoint_got_request(), "the request reached port 2");
  unsigned n = vtep1_got(got, 64);
  check(n == 3 && got[0] == 0 && got[1] == 1 && got[2] == 2, "the decap thread sent the 3 answers to the VTEP, in order");
  check(ctr(de, DPC_reply_batches) == 1 && ctr(de, DPC_reply_frames) == 3, "reply_batches 1, reply_frames 3 (decap's counters)");
  check(ctr(de, DPC_tap_rx_frames) == 3 && ctr_get(&de->stats.port[2].rx_packets) == 3, "tap_rx_frames and port 2's rx counted 3 once, on the decap thread");
  check(ctr(en, DPC_tap_rx_frames) == 0 && ctr_get(&en->stats.port[2].rx_packets) == 0, "nothing counted on the encap thread");
  check(ctr_get(&de->stats.port[2].tx_packets) == 1 && ctr_get(&de->stats.vtep[1].tx_packets) == 3, "port 2 tx 1 (the request), VTEP 1 tx 3");
  check(p2->reading[0] == 0 && de->nwrote == 0 && !de->reply_on, "the port's read exclusion released");

  /* 2. The encap thread, woken by the same answers, finds nothing left: nothing read twice. */
  encap_port(en, 2, EPOLLIN);
  check(vtep1_got(got, 64) == 0 && ctr(en, DPC_tap_rx_frames) == 0, "the encap thread then reads nothing (nothing sent twice)");

  /* 3. The encap thread holds the port: the decap batch does not read it; the encap thread takes the answers, in order. */
  endpoint_answers(3, 6);
  check(port_read_try(p2, 0), "the encap thread holds port 2");
  vtep1_sends_request();
  decap_batch_light(de, true);
  check(endpoint_got_request() && ctr(de, DPC_reply_frames) == 3 && ctr(de, DPC_reply_batches) == 1, "held by the encap thread: the decap thread reads nothing");
  check(p2->reading[0] == 1, "and leaves the encap thread's hold alone");
  port_read_done(p2, 0);
  encap_port(en, 2, EPOLLIN);
  n = vtep1_got(got, 64);
  check(n == 3 && got[0] == 3 && got[1] == 4 && got[2] == 5 && ctr(en, DPC_tap_rx_frames) == 3, "the encap thread sent them, in order, once");

  /* 4. A heavy batch (not read back): the hold is released, the encap thread reads. */
  endpoint_answers(6, 8);
  vtep1_sends_request();
  decap_batch_light(de, false);
  check(endpoint_got_request() && p2->reading[0] == 0 && ctr(de, DPC_reply_frames) == 3, "a batch that does not read back releases the port untouched");
  encap_port(en, 2, EPOLLIN);
  n = vtep1_got(got, 64);
  check(n == 2 && got[0] == 6 && got[1] == 7, "the encap thread sent what waited, in order");

  /* 5. Every frame read once across both threads. */
  check(ctr(de, DPC_tap_rx_frames) + ctr(en, DPC_tap_rx_frames) == 8, "8 answers, 8 frames read in all");

  /* 6. One thread per light queue (#18): merged, the encap thread reads the underlay socket
   * from its own epoll set, decapsulates with its own counters, and sends the answers from
   * the port it is woken for next; split, the socket leaves its set and the decap thread is woken. */
  check(queue_sources(H.dp, 0) >= 1 && H.dp->q_src_fd[0][0] == H.dp->rx_fd, "queue 0's underlay sources start with its UDP socket");
  queue_merge(de);
  check(H.dp->q_merged[0] == 1 && ctr(de, DPC_queue_merges) == 1, "merged: q_merged set, queue_merges 1 (decap's counter)");
  endpoint_answers(8, 10);
  vtep1_sends_request();
  struct epoll_event ev[8];
  int ne = epoll_wait(en->epfd, ev, 8, 2000);
  bool saw_rx = false;
  for (int i = 0; i < ne; i++) saw_rx |= ev[i].data.u32 == DP_EV_UNDERLAY;
  check(saw_rx, "the request wakes the encap thread's epoll set (DP_EV_UNDERLAY | 0)");
  const uint64_t de_rx = ctr(de, DPC_underlay_rx_packets), de_tx2 = ctr_get(&de->stats.port[2].tx_packets);
  bool heavy = merged_read(en, 0);
  check(!heavy && endpoint_got_request(), "the encap thread decapsulated the request to port 2; the queue stays light");
  check(ctr(en, DPC_merged_batches) == 1 && ctr(en, DPC_merged_packets) == 1 && ctr(en, DPC_underlay_rx_packets) == 1 &&
            ctr_get(&en->stats.port[2].tx_packets) == 1,
        "merged_batches 1, merged_packets 1, underlay_rx_packets 1, port 2 tx 1: on the encap thread");
  check(ctr(de, DPC_underlay_rx_packets) == de_rx && ctr_get(&de->stats.port[2].tx_packets) == de_tx2 && p2->reading[0] == 0,
        "nothing counted on the decap thread, no port held");
  encap_port(en, 2, EPOLLIN);
  n = vtep1_got(got, 64);
  check(n == 2 && got[0] == 8 && got[1] == 9, "the encap thread sent the answers, in order");
  queue_split(en);
  uint64_t woke = 0;
  check(H.dp->q_merged[0] == 0 && read(H.dp->q_wake_fd[0], &woke, sizeof woke) == sizeof woke && woke == 1,
        "split: q_merged cleared, the decap thread's eventfd written");
  vtep1_sends_request();
  usleep(10000);
  ne = epoll_wait(en->epfd, ev, 8, 0);
  saw_rx = false;
  for (int i = 0; i < ne; i++) saw_rx |= (ev[i].data.u32 & DP_EV_UNDERLAY) != 0;
  check(!saw_rx, "the underlay socket left the encap thread's epoll set");
  decap_batch_light(de, true);
  check(endpoint_got_request() && ctr(de, DPC_underlay_rx_packets) == de_rx + 1, "the decap thread reads it again");

  printf("1..%d\n", n_test);
  return n_fail ? 1 : 0;
}
