/*
 * vtepd-dp: the data path in a process of its own (#18, native/dpx.h says why). Spawned by
 * the addon (dpx_create) with its control socket on fd 3 and its event stream on fd 4
 * (native/dp_proto.h); it creates the data path (fastpath.h) from the first request and
 * then serves one request at a time, while its fast-path threads switch packets. Their
 * events reach this thread through an eventfd (the notify) and go to the parent as they are.
 *
 * It owns its copies of the port fds it is sent and closes them when the port goes. It
 * ends when the parent closes the control socket, or dies (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../dp_proto.h"
#include "../dp_wire.h"
#include "../fastpath.h"


static struct dp *dp;
static int efd = -1;
/* Our copies of each port's fds (queue order), closed when the port is replaced or deleted. */
static int port_fds[DP_MAX_PORTS][DP_MAX_QUEUES];
static uint8_t port_nfds[DP_MAX_PORTS];

static void notify(void *arg) {
  (void)arg;
  uint64_t one = 1;
  ssize_t w = write(efd, &one, sizeof one);
  (void)w;
}

static void forget_port(uint32_t port) {
  if (port >= DP_MAX_PORTS) return;
  for (unsigned i = 0; i < port_nfds[port]; i++) close(port_fds[port][i]);
  port_nfds[port] = 0;
}

static void keep_port(uint32_t port, const int *fds, unsigned n) {
  forget_port(port);
  memcpy(port_fds[port], fds, sizeof(int) * n);
  port_nfds[port] = (uint8_t)n;
}

static int reply(int ctl, int err, const char *msg, const struct dpw_part *parts, unsigned nparts, const int *fds,
                 unsigned nfds) {
  struct dpp_rep r = {.err = err, .nfds = nfds};
  for (unsigned i = 0; i < nparts; i++) r.len += (uint32_t)parts[i].n;
  if (err && msg) snprintf(r.msg, sizeof r.msg, "%s", msg);
  return dpw_send(ctl, &r, sizeof r, parts, nparts, fds, nfds);
}

/*
 * An error message of the data path names fds by our numbers; the parent knows them by its
 * own (sent with the request): "fd 12" becomes "fd 31".
 */
static void rename_fds(char *msg, size_t cap, const int *mine, const int *theirs, unsigned n) {
  char out[DPP_ERR_LEN];
  size_t o = 0;
  for (const char *s = msg; *s && o + 1 < sizeof out;) {
    if (strncmp(s, "fd ", 3) == 0 && s[3] >= '0' && s[3] <= '9') {
      char *end;
      long v = strtol(s + 3, &end, 10);
      int name = (int)v;
      for (unsigned i = 0; i < n; i++)
        if (mine[i] == v) name = theirs[i];
      int w = snprintf(out + o, sizeof out - o, "fd %d", name);
      if (w < 0 || (size_t)w >= sizeof out - o) break;
      o += (size_t)w;
      s = end;
      continue;
    }
    out[o++] = *s++;
  }
  out[o] = 0;
  snprintf(msg, cap, "%s", out);
}

/* The payload is exactly n bytes of struct T (else EBADMSG); EXPECT_FDS: then the parent's number of each fd. */
#define EXPECT_FDS(T)                                                  \
  if (len != sizeof(T) + sizeof(int) * nfds) {                         \
    err = EBADMSG;                                                     \
    msg = "request of the wrong size for " #T " and its fds";          \
    break;                                                             \
  }                                                                    \
  const T *in = (const T *)buf;                                        \
  memcpy(theirs, buf + sizeof(T), sizeof(int) * nfds);                 \
  nrename = nfds;
#define EXPECT(T)                                 \
  if (len != sizeof(T)) {                         \
    err = EBADMSG;                                \
    msg = "request of the wrong size for " #T;    \
    break;                                        \
  }                                               \
  const T *in = (const T *)buf;

static int serve(int ctl, const struct dpp_req *q, uint8_t *buf, size_t len, int *fds, unsigned nfds) {
  int err = 0;
  const char *msg = NULL;
  bool used_fds = false;
  struct dpw_part out[4];
  unsigned nout = 0;
  int ofds[DPP_MAX_FDS];
  unsigned nofds = 0;
  void *heap = NULL;
  uint32_t u32 = 0;
  int theirs[DPP_MAX_FDS];
  unsigned nrename = 0;
  char msgbuf[DPP_ERR_LEN];

  if (!dp && q->op != DPP_CREATE) {
    err = ESHUTDOWN;
    msg = "the data path is not created yet";
    goto done;
  }
  switch (q->op) {
  case DPP_CREATE: {
    EXPECT(struct dpp_create);
    if (dp) {
      err = EALREADY;
      msg = "the data path is already created";
      break;
    }
    if (in->version != DPP_VERSION || in->config_size != sizeof in->cfg) {
      err = EPROTO;
      msg = "vtepd-dp is not of this build of the addon (protocol version or config size differ)";
      break;
    }
    struct dp_config cfg = in->cfg;
    cfg.adopt_fds = nfds ? fds : NULL;
    cfg.adopt_n = nfds;
    const char *step = "";
    err = dp_create(&cfg, &dp, &step);
    if (err) msg = step;
    else {
      used_fds = true; /* the data path owns them now */
      const char *c = dp_cipher(dp);
      out[nout++] = (struct dpw_part){c, strlen(c)};
    }
    break;
  }
  case DPP_START:
    err = dp_start(dp, notify, NULL);
    break;
  case DPP_STOP:
    dp_stop(dp);
    break;
  case DPP_UNDERLAY_FDS:
    nofds = dp_underlay_fds(dp, ofds);
    break;
  case DPP_TENANT_SET: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_set(dp, in->a, in->b);
    break;
  }
  case DPP_TENANT_DEL: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_del(dp, in->a);
    break;
  }
  case DPP_TENANT_ACCEPT: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_accept(dp, in->a, in->b, in->c != 0);
    break;
  }
  case DPP_TENANT_ACCEPT_ANY: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_accept_any(dp, in->a, in->c != 0);
    break;
  }
  case DPP_TENANT_ENCAPS: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_encaps(dp, in->a, in->b);
    break;
  }
  case DPP_TENANT_RELAY: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_relay(dp, in->a, in->c != 0);
    break;
  }
  case DPP_TENANT_INNER_VLAN: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_inner_vlan(dp, in->a, in->c != 0);
    break;
  }
  case DPP_TENANT_MSS: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_mss(dp, in->a, (uint16_t)in->b, (uint16_t)in->c);
    break;
  }
  case DPP_TENANT_ENCRYPT: {
    EXPECT(struct dpp_ids);
    err = dp_tenant_encrypt(dp, in->a, in->c != 0);
    break;
  }
  case DPP_PORT_SET_QUEUES: {
    EXPECT_FDS(struct dpp_ids);
    if (nfds < 1 || in->a >= DP_MAX_PORTS) {
      err = EINVAL;
      msg = "a port needs its fds and an id below 4096";
      break;
    }
    err = dp_port_set_queues(dp, in->a, in->b, fds, nfds, in->c);
    if (!err) {
      keep_port(in->a, fds, nfds);
      used_fds = true;
    }
    break;
  }
  case DPP_PORT_DEL: {
    EXPECT(struct dpp_ids);
    err = dp_port_del(dp, in->a);
    if (!err) forget_port(in->a);
    break;
  }
  case DPP_TRUNK_SET: {
    EXPECT_FDS(struct dpp_ids);
    if (nfds != 1 || in->a >= DP_MAX_PORTS) {
      err = EINVAL;
      msg = "a trunk needs one fd and an id below 4096";
      break;
    }
    err = dp_trunk_set(dp, in->a, fds[0], in->c);
    if (!err) {
      keep_port(in->a, fds, 1);
      used_fds = true;
    }
    break;
  }
  case DPP_VLAN_PORT_SET: {
    EXPECT(struct dpp_ids);
    err = dp_vlan_port_set(dp, in->a, in->b, (uint32_t)in->c, in->d);
    if (!err) forget_port(in->a); /* a VLAN port has no fd of its own */
    break;
  }
  case DPP_VTEP_SET: {
    EXPECT(struct dpp_vtep);
    err = dp_vtep_set_ex(dp, in->vtep, &in->sa, in->len, &in->opts);
    break;
  }
  case DPP_VTEP_DEL: {
    EXPECT(struct dpp_ids);
    err = dp_vtep_del(dp, in->a);
    break;
  }
  case DPP_SEND_CONTROL:
  case DPP_SEND_SECURE: {
    if (len < sizeof(struct dpp_send)) {
      err = EBADMSG;
      msg = "short send request";
      break;
    }
    const struct dpp_send *in = (const struct dpp_send *)buf;
    const uint8_t *payload = buf + sizeof *in;
    size_t n = len - sizeof *in;
    err = q->op == DPP_SEND_CONTROL ? dp_send_control(dp, &in->sa, in->len, payload, n, in->df, in->from_rx)
                                    : dp_send_secure(dp, in->vtep, payload, n, in->df);
    break;
  }
  case DPP_KEY_RX_SET: {
    EXPECT(struct dpp_key);
    err = dp_key_rx_set(dp, in->index, in->vtep, in->key);
    break;
  }
  case DPP_KEY_RX_DEL: {
    EXPECT(struct dpp_ids);
    err = dp_key_rx_del(dp, in->a);
    break;
  }
  case DPP_KEY_TX_SET: {
    EXPECT(struct dpp_key);
    err = dp_key_tx_set(dp, in->vtep, in->index, in->key);
    break;
  }
  case DPP_KEY_TX_DEL: {
    EXPECT(struct dpp_ids);
    err = dp_key_tx_del(dp, in->a);
    break;
  }
  case DPP_FDB_SET: {
    EXPECT(struct dpp_fdb);
    err = dp_fdb_set(dp, in->tenant, in->mac, in->kind, in->id);
    break;
  }
  case DPP_FDB_DEL: {
    EXPECT(struct dpp_fdb);
    err = dp_fdb_del(dp, in->tenant, in->mac);
    break;
  }
  case DPP_FDB_IDLE: {
    uint8_t *recs = NULL;
    size_t n = 0;
    err = dp_fdb_idle(dp, &recs, &n);
    heap = recs;
    if (!err) out[nout++] = (struct dpw_part){recs, n};
    break;
  }
  case DPP_TRANSMIT: {
    const struct dpp_transmit *in = (const struct dpp_transmit *)buf;
    if (len < sizeof *in || len != sizeof *in + (size_t)in->len + 4 * ((size_t)in->nports + in->nvteps)) {
      err = EBADMSG;
      msg = "transmit request of the wrong size";
      break;
    }
    const uint8_t *frame = buf + sizeof *in;
    uint32_t *ids = malloc( /* aligned copies of the ids */
        4 * ((size_t)in->nports + in->nvteps) + 4);
    if (!ids) {
      err = ENOMEM;
      break;
    }
    memcpy(ids, frame + in->len, 4 * ((size_t)in->nports + in->nvteps));
    err = dp_transmit(dp, in->tenant, frame, in->len, ids, in->nports, ids + in->nports, in->nvteps, &u32);
    free(ids);
    if (!err) out[nout++] = (struct dpw_part){&u32, sizeof u32};
    break;
  }
  case DPP_STATS: {
    size_t n = sizeof(struct dpp_stats_hdr) + (size_t)(DP_MAX_PORTS + DP_MAX_VTEPS + DP_MAX_TENANTS) * sizeof(struct dp_io_stat);
    struct dpp_stats_hdr *h = heap = calloc(1, n);
    if (!h) {
      err = ENOMEM;
      break;
    }
    struct dp_io_stat *s = (struct dp_io_stat *)(h + 1);
    dp_stats_read(dp, h->counters, s, &h->nports, s + DP_MAX_PORTS, &h->nvteps);
    memmove(s + h->nports, s + DP_MAX_PORTS, h->nvteps * sizeof *s);
    h->ntenants = dp_tenant_stats(dp, s + h->nports + h->nvteps);
    h->nqueues = dp_queue_stats(dp, h->encap_frames, h->decap_packets);
    out[nout++] = (struct dpw_part){h, sizeof *h + ((size_t)h->nports + h->nvteps + h->ntenants) * sizeof *s};
    break;
  }
  default:
    err = EOPNOTSUPP;
    msg = "unknown request";
  }
done:
  if (err && !msg && dp) msg = dp_last_error(dp);
  if (err && msg && nrename) {
    snprintf(msgbuf, sizeof msgbuf, "%s", msg);
    rename_fds(msgbuf, sizeof msgbuf, fds, theirs, nrename);
    msg = msgbuf;
  }
  if (!used_fds)
    for (unsigned i = 0; i < nfds; i++) close(fds[i]);
  int e = reply(ctl, err, msg, out, nout, ofds, nofds);
  free(heap);
  return e;
}

/* Queued events to the parent: a length, then the records. */
static int send_events(int ev) {
  uint64_t n;
  if (read(efd, &n, sizeof n) < 0 && errno != EAGAIN) return errno;
  const uint8_t *data;
  size_t len;
  dp_events_take(dp, &data, &len);
  if (!len) return 0;
  uint32_t l = (uint32_t)len;
  struct dpw_part p = {data, len};
  return dpw_send(ev, &l, sizeof l, &p, 1, NULL, 0);
}

int main(int argc, char **argv) {
  /* Ends with its parent; and if the parent is already gone, now. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc != 3 || strcmp(argv[1], "--parent") != 0 || getppid() != (pid_t)atoi(argv[2])) {
    fprintf(stderr, "vtepd-dp: started by the vtepd addon only (vtepd-dp --parent PID)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* A signal to the service's whole group (Ctrl-C, systemctl stop) is for the daemon, which
   * stops in order and then closes our control socket; we end then, or with it. */
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  /* Nothing of the parent's but our two sockets (and stdio for a crash's last words). */
  close_range(DPP_EV_FD + 1, ~0u, 0);
  int ctl = DPP_CTL_FD, ev = DPP_EV_FD;
  if ((efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) return 1;
  /*
   * A small process: that is its point (#18: a thread's wake-up here costs with the process's
   * resident pages). glibc raises its mmap threshold to the size of each big block freed, so
   * after one stats answer (megabytes, mostly untouched) every later block up to that size
   * came from the heap, zeroed there by calloc, and stayed resident: 15-20 MB where 4 MB
   * would do. A fixed threshold turns the rise off: big blocks are mapped, and given back.
   */
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);

  uint8_t *buf = NULL;
  size_t cap = 0;
  for (;;) {
    struct pollfd pf[2] = {{ctl, POLLIN, 0}, {efd, POLLIN, 0}};
    if (poll(pf, dp ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (dp && (pf[1].revents & POLLIN) && send_events(ev)) break;
    if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    struct dpp_req q;
    int fds[DPP_MAX_FDS];
    unsigned nfds = 0;
    if (dpw_recv(ctl, &q, sizeof q, fds, DPP_MAX_FDS, &nfds)) break; /* the parent is done with us */
    if (q.len > DPP_MAX_PAYLOAD) break; /* dpx_call never sends one */
    if (q.len > cap) {
      uint8_t *b = realloc(buf, q.len);
      if (!b) break;
      buf = b;
      cap = q.len;
    }
    if (q.len && dpw_read(ctl, buf, q.len)) break;
    if (serve(ctl, &q, buf, q.len, fds, nfds)) break;
    if (cap > 64 * 1024) { /* a big request's buffer (an FDB replay) is not kept */
      free(buf);
      buf = NULL;
      cap = 0;
    }
  }
  if (dp) dp_destroy(dp);
  for (uint32_t p = 0; p < DP_MAX_PORTS; p++) forget_port(p);
  free(buf);
  return 0;
}
