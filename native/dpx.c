/*
 * A data path here or in a process of its own: see dpx.h. The remote half: spawn vtepd-dp,
 * carry each call over the control socket (dp_proto.h), and drain its event stream on a
 * reader thread into two halves like the data path's own queue, waking the JS thread with
 * the same notify the in-process data path calls.
 */
#include "dpx.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dp_proto.h"
#include "dp_wire.h"

extern char **environ;

struct dpx {
  struct dp *dp; /* in this process; NULL for a child */
  pid_t pid;
  int pidfd; /* signals reach this child only, never a process that took its PID later */
  int ctl, ev;
  bool dead, reaped;
  bool hung; /* ended by us: it did not answer a request in CALL_TIMEOUT_S */
  int wstatus;
  char err[DPP_ERR_LEN];
  char cipher[32];
  /* Event records the reader thread had no room for (JS that far behind): added to the
   * child's own event_queue_full in dpx_stats_read, as the in-process queue counts them. */
  uint64_t ev_dropped;
  int ufds[1 + DP_MAX_SOURCE_PORTS]; /* our copies of the child's underlay sockets */
  /* The last DPP_STATS answer, kept by dpx_stats_read for the dpx_tenant_stats and
   * dpx_queue_stats that the addon calls right after it (one request, not three). */
  uint8_t *snap;
  uint64_t snap_ms;
  unsigned nufds;
  /* events from the child */
  pthread_t reader;
  bool reader_on;
  pthread_mutex_t mu;
  uint8_t *half[2];
  size_t len[2], cap[2];
  int cur;
  void (*notify)(void *);
  void *notify_arg;
};

static __thread char step_buf[DPP_ERR_LEN];

/*
 * How long one request may wait for the child: its send and each read of the answer. The
 * child answers in microseconds (a table change, a stats copy); one that has not answered
 * in this time is stopped or stuck, and the JS thread waiting on it is the daemon's whole
 * control plane. So it is ended (SIGKILL through its pidfd), the call fails with ETIMEDOUT
 * and every later one with EPIPE, and the daemon's periodic check finds it gone.
 */
#define CALL_TIMEOUT_S 5

/* JS thread: the child is no longer usable; say so in the error. */
static void gone(struct dpx *x) {
  __atomic_store_n(&x->dead, true, __ATOMIC_RELEASE);
  snprintf(x->err, sizeof x->err, "the data path process (pid %d) is gone", (int)x->pid);
}

/*
 * The conversation with the child broke (a short read, an answer that does not fit, the
 * reader's end): it may still run, with tables we can no longer change. End it, so that
 * dpx_process says it is gone and the daemon acts on it, rather than forward half-blind.
 */
static void sever(struct dpx *x) {
  __atomic_store_n(&x->dead, true, __ATOMIC_RELEASE);
  if (x->pidfd >= 0) syscall(SYS_pidfd_send_signal, x->pidfd, SIGKILL, NULL, 0);
}

/*
 * sever, on the JS thread (which alone reaps the child): without a pidfd (pidfd_open refused:
 * a kernel before 5.3, a seccomp profile), by its PID, which no other process can have taken
 * while the child is not reaped.
 */
static void sever_js(struct dpx *x) {
  sever(x);
  if (x->pidfd < 0 && x->pid > 0 && !x->reaped) kill(x->pid, SIGKILL);
}

/*
 * One request and its reply. parts follow the request struct; the reply's payload comes
 * back malloc()ed in *rbuf (free it; NULL when empty), its fds in rfds.
 */
static int call(struct dpx *x, uint32_t op, const struct dpw_part *parts, unsigned nparts, const int *fds,
                unsigned nfds, uint8_t **rbuf, size_t *rlen, int *rfds, unsigned maxrfds, unsigned *nrfds) {
  if (rbuf) *rbuf = NULL;
  if (rlen) *rlen = 0;
  if (nrfds) *nrfds = 0;
  if (__atomic_load_n(&x->dead, __ATOMIC_ACQUIRE)) {
    gone(x);
    return EPIPE;
  }
  struct dpp_req q = {.op = op, .nfds = nfds};
  size_t total = 0;
  for (unsigned i = 0; i < nparts; i++) total += parts[i].n;
  if (total > DPP_MAX_PAYLOAD) {
    snprintf(x->err, sizeof x->err, "a request of %zu bytes is more than the data path process takes", total);
    return EMSGSIZE;
  }
  q.len = (uint32_t)total;
  /* As in process: a closed fd is EBADF, and nothing is sent. */
  for (unsigned i = 0; i < nfds; i++)
    if (fcntl(fds[i], F_GETFD) < 0) {
      snprintf(x->err, sizeof x->err, "fd %d is not an open descriptor", fds[i]);
      return EBADF;
    }
  struct dpp_rep r;
  int got[DPP_MAX_FDS];
  unsigned ngot = 0;
  int e = dpw_send(x->ctl, &q, sizeof q, parts, nparts, fds, nfds);
  if (!e) e = dpw_recv(x->ctl, &r, sizeof r, got, DPP_MAX_FDS, &ngot);
  uint8_t *buf = NULL;
  if (!e && r.len) {
    if (r.len > DPP_MAX_PAYLOAD || !(buf = malloc(r.len))) e = EBADMSG;
    else e = dpw_read(x->ctl, buf, r.len);
  }
  if (e) {
    free(buf);
    for (unsigned i = 0; i < ngot; i++) close(got[i]);
    sever_js(x);
    gone(x);
    if (e == EAGAIN || e == EWOULDBLOCK) {
      x->hung = true;
      snprintf(x->err, sizeof x->err, "the data path process (pid %d) did not answer for %d s and was ended (SIGKILL)",
               (int)x->pid, CALL_TIMEOUT_S);
      return ETIMEDOUT;
    }
    return EPIPE;
  }
  if (r.err) {
    r.msg[DPP_ERR_LEN - 1] = 0;
    memcpy(x->err, r.msg, sizeof x->err);
  }
  for (unsigned i = 0; i < ngot; i++) {
    if (rfds && i < maxrfds) rfds[(*nrfds)++] = got[i];
    else close(got[i]);
  }
  if (rbuf) {
    *rbuf = buf;
    *rlen = r.len;
  } else free(buf);
  return r.err;
}

/* A request whose answer is its error alone. */
static int call_in(struct dpx *x, uint32_t op, const struct dpw_part *parts, unsigned nparts, const int *fds,
                   unsigned nfds) {
  return call(x, op, parts, nparts, fds, nfds, NULL, NULL, NULL, 0, NULL);
}

static int call_ids(struct dpx *x, uint32_t op, uint32_t a, uint32_t b, int32_t c, uint32_t d) {
  struct dpp_ids ids = {a, b, c, d};
  struct dpw_part p = {&ids, sizeof ids};
  return call_in(x, op, &p, 1, NULL, 0);
}

/* A receive or send key: the copy on our stack is wiped once sent. */
static int call_key(struct dpx *x, uint32_t op, uint32_t index, uint32_t vtep, const uint8_t key[32]) {
  struct dpp_key k = {.index = index, .vtep = vtep};
  memcpy(k.key, key, sizeof k.key);
  struct dpw_part p = {&k, sizeof k};
  int err = call_in(x, op, &p, 1, NULL, 0);
  explicit_bzero(&k, sizeof k);
  return err;
}

/* The event records in one chunk from the child (each starts with its length, le32). */
static uint64_t records_in(const uint8_t *p, size_t n) {
  uint64_t k = 0;
  for (size_t off = 0; off + DP_EVENT_HEADER <= n; k++) {
    uint32_t rl;
    memcpy(&rl, p + off, sizeof rl);
    rl = le32toh(rl);
    if (rl < DP_EVENT_HEADER) return k + 1; /* the child never writes one: count what we saw */
    off += rl;
  }
  return k;
}

static void *reader_main(void *arg) {
  struct dpx *x = arg;
  uint8_t *tmp = NULL;
  size_t tcap = 0;
  for (;;) {
    uint32_t n;
    if (dpw_read(x->ev, &n, sizeof n) || n > DP_EVENT_QUEUE_BYTES / 2) break;
    if (n > tcap) {
      uint8_t *t = realloc(tmp, n);
      if (!t) break;
      tmp = t;
      tcap = n;
    }
    if (dpw_read(x->ev, tmp, n)) break;
    pthread_mutex_lock(&x->mu);
    int c = x->cur;
    if (x->len[c] + n <= DP_EVENT_QUEUE_BYTES / 2) { /* else dropped: JS is that far behind */
      if (x->len[c] + n > x->cap[c]) {
        size_t want = x->cap[c] ? x->cap[c] : 65536;
        while (want < x->len[c] + n) want *= 2;
        uint8_t *h = realloc(x->half[c], want);
        if (h) {
          x->half[c] = h;
          x->cap[c] = want;
        }
      }
      if (x->len[c] + n <= x->cap[c]) {
        memcpy(x->half[c] + x->len[c], tmp, n);
        x->len[c] += n;
      } else x->ev_dropped += records_in(tmp, n);
    } else x->ev_dropped += records_in(tmp, n);
    /* Under the lock: once dpx_stop has cleared it, no wake-up is on its way (the uv_async
     * behind it may be closed and freed right after). */
    if (x->notify) x->notify(x->notify_arg);
    pthread_mutex_unlock(&x->mu);
  }
  free(tmp);
  sever(x); /* the error text is the JS thread's to write (gone) */
  return NULL;
}

static void reap(struct dpx *x, bool wait) {
  if (x->reaped || x->pid <= 0) return;
  for (int i = 0;; i++) {
    pid_t r = waitpid(x->pid, &x->wstatus, WNOHANG);
    if (r == x->pid || (r < 0 && errno == ECHILD)) {
      x->reaped = true;
      if (r < 0) x->wstatus = 0;
      return;
    }
    if (!wait) return;
    if (i == 200) sever_js(x); /* 2 s after its control socket closed */
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

static int spawn_child(struct dpx *x, const char *exe) {
  int c[2], e[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c) < 0) return errno;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e) < 0) {
    int err = errno;
    close(c[0]);
    close(c[1]);
    return err;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, c[1], DPP_CTL_FD);
  posix_spawn_file_actions_adddup2(&fa, e[1], DPP_EV_FD);
  posix_spawnattr_init(&at);
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGPIPE);
  sigaddset(&dfl, SIGTERM);
  sigaddset(&dfl, SIGINT);
  sigaddset(&dfl, SIGHUP);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dfl);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char parent[16];
  snprintf(parent, sizeof parent, "%d", (int)getpid());
  char *argv[] = {(char *)exe, (char *)"--parent", parent, NULL};
  int err = posix_spawn(&x->pid, exe, &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(c[1]);
  close(e[1]);
  if (err) {
    close(c[0]);
    close(e[0]);
    x->pid = 0;
    return err;
  }
  x->ctl = c[0];
  x->ev = e[0];
  struct timeval tv = {.tv_sec = CALL_TIMEOUT_S};
  setsockopt(x->ctl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(x->ctl, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  x->pidfd = (int)syscall(SYS_pidfd_open, x->pid, 0); /* before anyone reaps it: still ours */
  return 0;
}

int dpx_create(const struct dp_config *cfg, const char *exe, struct dpx **out, const char **step) {
  struct dpx *x = calloc(1, sizeof *x);
  if (!x) {
    *step = "calloc";
    return ENOMEM;
  }
  x->ctl = x->ev = x->pidfd = -1;
  if (!exe) {
    int err = dp_create(cfg, &x->dp, step);
    if (err) free(x);
    else *out = x;
    return err;
  }
  pthread_mutex_init(&x->mu, NULL);
  int err = spawn_child(x, exe);
  if (err) {
    snprintf(step_buf, sizeof step_buf, "starting the data path process %s", exe);
    *step = step_buf;
    pthread_mutex_destroy(&x->mu);
    free(x);
    return err;
  }
  struct dpp_create c = {.version = DPP_VERSION, .config_size = sizeof c.cfg, .cfg = *cfg};
  c.cfg.adopt_fds = NULL;
  struct dpw_part p = {&c, sizeof c};
  uint8_t *name = NULL;
  size_t nlen = 0;
  err = call(x, DPP_CREATE, &p, 1, cfg->adopt_fds, cfg->adopt_n, &name, &nlen, NULL, 0, NULL);
  if (!err && (err = pthread_create(&x->reader, NULL, reader_main, x)) == 0) x->reader_on = true;
  if (err) {
    memcpy(step_buf, x->err, sizeof step_buf);
    *step = step_buf;
    free(name);
    dpx_destroy(x);
    return err;
  }
  if (name) memcpy(x->cipher, name, nlen < sizeof x->cipher - 1 ? nlen : sizeof x->cipher - 1);
  free(name);
  /* The child owns its copies now; ours were the caller's to hand over (dp_config). */
  for (unsigned i = 0; i < cfg->adopt_n; i++) close(cfg->adopt_fds[i]);
  *out = x;
  return 0;
}

void dpx_destroy(struct dpx *x) {
  if (!x) return;
  if (x->dp) {
    dp_destroy(x->dp);
    free(x);
    return;
  }
  if (x->ctl >= 0) close(x->ctl); /* the child destroys its data path and exits */
  if (x->ev >= 0) shutdown(x->ev, SHUT_RDWR);
  if (x->reader_on) pthread_join(x->reader, NULL);
  if (x->ev >= 0) close(x->ev);
  reap(x, true);
  if (x->pidfd >= 0) close(x->pidfd);
  for (unsigned i = 0; i < x->nufds; i++) close(x->ufds[i]);
  free(x->snap);
  free(x->half[0]);
  free(x->half[1]);
  pthread_mutex_destroy(&x->mu);
  free(x);
}

const char *dpx_last_error(const struct dpx *x) { return x->dp ? dp_last_error(x->dp) : x->err; }

int dpx_start(struct dpx *x, void (*notify)(void *), void *arg) {
  if (x->dp) return dp_start(x->dp, notify, arg);
  pthread_mutex_lock(&x->mu);
  x->notify = notify;
  x->notify_arg = arg;
  pthread_mutex_unlock(&x->mu);
  int err = call_in(x, DPP_START, NULL, 0, NULL, 0);
  if (err) {
    pthread_mutex_lock(&x->mu);
    x->notify = NULL;
    pthread_mutex_unlock(&x->mu);
  }
  return err;
}

void dpx_stop(struct dpx *x) {
  if (x->dp) {
    dp_stop(x->dp);
    return;
  }
  call_in(x, DPP_STOP, NULL, 0, NULL, 0);
  /* As dp_stop: nothing calls notify after this returns. */
  pthread_mutex_lock(&x->mu);
  x->notify = NULL;
  pthread_mutex_unlock(&x->mu);
  for (unsigned i = 0; i < x->nufds; i++) close(x->ufds[i]);
  x->nufds = 0;
}

unsigned dpx_underlay_fds(struct dpx *x, int *fds) {
  if (x->dp) return dp_underlay_fds(x->dp, fds);
  for (unsigned i = 0; i < x->nufds; i++) close(x->ufds[i]);
  x->nufds = 0;
  if (call(x, DPP_UNDERLAY_FDS, NULL, 0, NULL, 0, NULL, NULL, x->ufds, 1 + DP_MAX_SOURCE_PORTS, &x->nufds)) return 0;
  memcpy(fds, x->ufds, sizeof(int) * x->nufds);
  return x->nufds;
}

void dpx_events_take(struct dpx *x, const uint8_t **data, size_t *len) {
  if (x->dp) {
    dp_events_take(x->dp, data, len);
    return;
  }
  pthread_mutex_lock(&x->mu);
  int f = x->cur;
  x->cur ^= 1;
  x->len[x->cur] = 0;
  pthread_mutex_unlock(&x->mu);
  *data = x->half[f];
  *len = x->len[f];
}

pid_t dpx_process(struct dpx *x, bool *alive, char *exit, size_t exit_len) {
  if (x->dp) {
    *alive = true;
    if (exit_len) exit[0] = 0;
    return 0;
  }
  reap(x, false);
  *alive = !x->reaped;
  if (exit_len) exit[0] = 0;
  if (x->reaped && exit_len) {
    if (x->hung) snprintf(exit, exit_len, "did not answer for %d s and was ended (SIGKILL)", CALL_TIMEOUT_S);
    else if (WIFSIGNALED(x->wstatus)) snprintf(exit, exit_len, "killed by signal %d", WTERMSIG(x->wstatus));
    else snprintf(exit, exit_len, "exited with status %d", WEXITSTATUS(x->wstatus));
  }
  return x->pid;
}

#define LOCAL_OR(call_local) \
  if (x->dp) return call_local

int dpx_tenant_set(struct dpx *x, uint32_t tenant, uint32_t vni) {
  LOCAL_OR(dp_tenant_set(x->dp, tenant, vni));
  return call_ids(x, DPP_TENANT_SET, tenant, vni, 0, 0);
}
int dpx_tenant_del(struct dpx *x, uint32_t tenant) {
  LOCAL_OR(dp_tenant_del(x->dp, tenant));
  return call_ids(x, DPP_TENANT_DEL, tenant, 0, 0, 0);
}
int dpx_tenant_accept(struct dpx *x, uint32_t tenant, uint32_t vtep, bool accept) {
  LOCAL_OR(dp_tenant_accept(x->dp, tenant, vtep, accept));
  return call_ids(x, DPP_TENANT_ACCEPT, tenant, vtep, accept, 0);
}
int dpx_tenant_accept_any(struct dpx *x, uint32_t tenant, bool any) {
  LOCAL_OR(dp_tenant_accept_any(x->dp, tenant, any));
  return call_ids(x, DPP_TENANT_ACCEPT_ANY, tenant, 0, any, 0);
}
int dpx_tenant_encaps(struct dpx *x, uint32_t tenant, unsigned mask) {
  LOCAL_OR(dp_tenant_encaps(x->dp, tenant, mask));
  return call_ids(x, DPP_TENANT_ENCAPS, tenant, mask, 0, 0);
}
int dpx_tenant_relay(struct dpx *x, uint32_t tenant, bool relay) {
  LOCAL_OR(dp_tenant_relay(x->dp, tenant, relay));
  return call_ids(x, DPP_TENANT_RELAY, tenant, 0, relay, 0);
}
int dpx_tenant_inner_vlan(struct dpx *x, uint32_t tenant, bool allow) {
  LOCAL_OR(dp_tenant_inner_vlan(x->dp, tenant, allow));
  return call_ids(x, DPP_TENANT_INNER_VLAN, tenant, 0, allow, 0);
}
int dpx_tenant_mss(struct dpx *x, uint32_t tenant, uint16_t mss4, uint16_t mss6) {
  LOCAL_OR(dp_tenant_mss(x->dp, tenant, mss4, mss6));
  return call_ids(x, DPP_TENANT_MSS, tenant, mss4, mss6, 0);
}
int dpx_tenant_encrypt(struct dpx *x, uint32_t tenant, bool required) {
  LOCAL_OR(dp_tenant_encrypt(x->dp, tenant, required));
  return call_ids(x, DPP_TENANT_ENCRYPT, tenant, 0, required, 0);
}
int dpx_port_set_queues(struct dpx *x, uint32_t port, uint32_t tenant, const int *fds, unsigned n, int vnet_hdr) {
  LOCAL_OR(dp_port_set_queues(x->dp, port, tenant, fds, n, vnet_hdr));
  if (n < 1 || n > DP_MAX_QUEUES) {
    snprintf(x->err, sizeof x->err, "a port has 1..%d queue fds, not %u", DP_MAX_QUEUES, n);
    return EINVAL;
  }
  /* The child tells two copies of one file apart with kcmp; where that is refused it could
   * not, so the same fd given twice is refused here, as in process without kcmp. */
  for (unsigned q = 1; q < n; q++)
    for (unsigned k = 0; k < q; k++)
      if (fds[k] == fds[q]) {
        snprintf(x->err, sizeof x->err, "fd %d is given twice for port %u", fds[q], port);
        return EINVAL;
      }
  struct dpp_ids ids = {port, tenant, vnet_hdr, 0};
  struct dpw_part p[2] = {{&ids, sizeof ids}, {fds, sizeof(int) * n}}; /* our numbers, for its messages */
  return call_in(x, DPP_PORT_SET_QUEUES, p, 2, fds, n);
}
int dpx_port_del(struct dpx *x, uint32_t port) {
  LOCAL_OR(dp_port_del(x->dp, port));
  return call_ids(x, DPP_PORT_DEL, port, 0, 0, 0);
}
int dpx_trunk_set(struct dpx *x, uint32_t port, int fd, int vnet_hdr) {
  LOCAL_OR(dp_trunk_set(x->dp, port, fd, vnet_hdr));
  struct dpp_ids ids = {port, 0, vnet_hdr, 0};
  struct dpw_part p[2] = {{&ids, sizeof ids}, {&fd, sizeof fd}};
  return call_in(x, DPP_TRUNK_SET, p, 2, &fd, 1);
}
int dpx_vlan_port_set(struct dpx *x, uint32_t port, uint32_t tenant, uint32_t trunk, uint32_t vlan) {
  LOCAL_OR(dp_vlan_port_set(x->dp, port, tenant, trunk, vlan));
  return call_ids(x, DPP_VLAN_PORT_SET, port, tenant, (int32_t)trunk, vlan);
}
int dpx_vtep_set_ex(struct dpx *x, uint32_t vtep, const struct sockaddr_storage *sa, socklen_t len,
                    const struct dp_vtep_opts *opts) {
  LOCAL_OR(dp_vtep_set_ex(x->dp, vtep, sa, len, opts));
  struct dpp_vtep v = {.vtep = vtep, .len = len, .sa = *sa, .opts = *opts};
  struct dpw_part p = {&v, sizeof v};
  return call_in(x, DPP_VTEP_SET, &p, 1, NULL, 0);
}
int dpx_vtep_del(struct dpx *x, uint32_t vtep) {
  LOCAL_OR(dp_vtep_del(x->dp, vtep));
  return call_ids(x, DPP_VTEP_DEL, vtep, 0, 0, 0);
}
int dpx_send_control(struct dpx *x, const struct sockaddr_storage *sa, socklen_t len, const uint8_t *payload, size_t n,
                     bool df, bool from_rx) {
  LOCAL_OR(dp_send_control(x->dp, sa, len, payload, n, df, from_rx));
  struct dpp_send s = {.len = len, .sa = *sa, .df = df, .from_rx = from_rx};
  struct dpw_part p[2] = {{&s, sizeof s}, {payload, n}};
  return call_in(x, DPP_SEND_CONTROL, p, 2, NULL, 0);
}
int dpx_key_rx_set(struct dpx *x, uint32_t index, uint32_t vtep, const uint8_t key[32]) {
  LOCAL_OR(dp_key_rx_set(x->dp, index, vtep, key));
  return call_key(x, DPP_KEY_RX_SET, index, vtep, key);
}
int dpx_key_rx_del(struct dpx *x, uint32_t index) {
  LOCAL_OR(dp_key_rx_del(x->dp, index));
  return call_ids(x, DPP_KEY_RX_DEL, index, 0, 0, 0);
}
int dpx_key_tx_set(struct dpx *x, uint32_t vtep, uint32_t remote_index, const uint8_t key[32]) {
  LOCAL_OR(dp_key_tx_set(x->dp, vtep, remote_index, key));
  return call_key(x, DPP_KEY_TX_SET, remote_index, vtep, key);
}
int dpx_key_tx_del(struct dpx *x, uint32_t vtep) {
  LOCAL_OR(dp_key_tx_del(x->dp, vtep));
  return call_ids(x, DPP_KEY_TX_DEL, vtep, 0, 0, 0);
}
int dpx_send_secure(struct dpx *x, uint32_t vtep, const uint8_t *payload, size_t n, bool df) {
  LOCAL_OR(dp_send_secure(x->dp, vtep, payload, n, df));
  struct dpp_send s = {.vtep = vtep, .df = df};
  struct dpw_part p[2] = {{&s, sizeof s}, {payload, n}};
  return call_in(x, DPP_SEND_SECURE, p, 2, NULL, 0);
}
const char *dpx_cipher(const struct dpx *x) { return x->dp ? dp_cipher(x->dp) : x->cipher; }
int dpx_fdb_set(struct dpx *x, uint32_t tenant, const uint8_t mac[6], uint8_t kind, uint32_t id) {
  LOCAL_OR(dp_fdb_set(x->dp, tenant, mac, kind, id));
  struct dpp_fdb f = {.tenant = tenant, .id = id, .kind = kind};
  memcpy(f.mac, mac, 6);
  struct dpw_part p = {&f, sizeof f};
  return call_in(x, DPP_FDB_SET, &p, 1, NULL, 0);
}
int dpx_fdb_del(struct dpx *x, uint32_t tenant, const uint8_t mac[6]) {
  LOCAL_OR(dp_fdb_del(x->dp, tenant, mac));
  struct dpp_fdb f = {.tenant = tenant};
  memcpy(f.mac, mac, 6);
  struct dpw_part p = {&f, sizeof f};
  return call_in(x, DPP_FDB_DEL, &p, 1, NULL, 0);
}
int dpx_fdb_idle(struct dpx *x, uint8_t **out, size_t *len) {
  LOCAL_OR(dp_fdb_idle(x->dp, out, len));
  int err = call(x, DPP_FDB_IDLE, NULL, 0, NULL, 0, out, len, NULL, 0, NULL);
  if (!err && !*out && !(*out = malloc(1))) return ENOMEM; /* as dp_fdb_idle: always free()able */
  return err;
}
int dpx_transmit(struct dpx *x, uint32_t tenant, const uint8_t *frame, size_t len, const uint32_t *ports,
                 size_t nports, const uint32_t *vteps, size_t nvteps, uint32_t *sent) {
  LOCAL_OR(dp_transmit(x->dp, tenant, frame, len, ports, nports, vteps, nvteps, sent));
  *sent = 0;
  if (len > DP_BUF_SIZE || nports > DP_MAX_PORTS || nvteps > DP_MAX_VTEPS) { /* dp_transmit refuses these too */
    snprintf(x->err, sizeof x->err, "frame of %zu bytes to %zu ports and %zu VTEPs is too much", len, nports, nvteps);
    return len > DP_BUF_SIZE ? EMSGSIZE : EINVAL;
  }
  struct dpp_transmit t = {tenant, (uint32_t)len, (uint32_t)nports, (uint32_t)nvteps};
  struct dpw_part p[4] = {{&t, sizeof t}, {frame, len}, {ports, nports * 4}, {vteps, nvteps * 4}};
  uint8_t *r = NULL;
  size_t rl = 0;
  int err = call(x, DPP_TRANSMIT, p, 4, NULL, 0, &r, &rl, NULL, 0, NULL);
  if (r && rl == sizeof *sent) memcpy(sent, r, sizeof *sent);
  free(r);
  return err;
}

/* The whole DPP_STATS reply, for the three readers (the addon calls them one after another):
 * dpx_stats_read's snapshot while it is at most 50 ms old (*raw then stays the snapshot's:
 * not the caller's to free), else a new request (*raw the caller's). */
#define SNAP_MS 50
static struct dpp_stats_hdr *stats_fetch(struct dpx *x, uint8_t **raw, size_t *rl, bool fresh) {
  if (!fresh && x->snap && dp_now_ms() - x->snap_ms <= SNAP_MS) {
    *raw = NULL;
    return (struct dpp_stats_hdr *)x->snap;
  }
  if (call(x, DPP_STATS, NULL, 0, NULL, 0, raw, rl, NULL, 0, NULL) || *rl < sizeof(struct dpp_stats_hdr)) {
    free(*raw);
    *raw = NULL;
    return NULL;
  }
  struct dpp_stats_hdr *h = (struct dpp_stats_hdr *)*raw;
  size_t want = sizeof *h + ((size_t)h->nports + h->nvteps + h->ntenants) * sizeof(struct dp_io_stat);
  if (want != *rl || h->nports > DP_MAX_PORTS || h->nvteps > DP_MAX_VTEPS || h->ntenants > DP_MAX_TENANTS ||
      h->nqueues > DP_MAX_QUEUES) {
    free(*raw);
    *raw = NULL;
    return NULL;
  }
  return h;
}

void dpx_stats_read(struct dpx *x, uint64_t counters[DPC__COUNT], struct dp_io_stat *ports, uint32_t *nports,
                    struct dp_io_stat *vteps, uint32_t *nvteps) {
  if (x->dp) {
    dp_stats_read(x->dp, counters, ports, nports, vteps, nvteps);
    return;
  }
  uint8_t *raw = NULL;
  size_t rl = 0;
  struct dpp_stats_hdr *h = stats_fetch(x, &raw, &rl, true);
  if (!h) { /* the child is gone: zeros, as a stopped data path would say */
    free(x->snap);
    x->snap = NULL;
    memset(counters, 0, sizeof(uint64_t) * DPC__COUNT);
    *nports = *nvteps = 0;
    return;
  }
  const struct dp_io_stat *s = (const struct dp_io_stat *)(h + 1);
  memcpy(counters, h->counters, sizeof h->counters);
  pthread_mutex_lock(&x->mu);
  counters[DPC_event_queue_full] += x->ev_dropped;
  pthread_mutex_unlock(&x->mu);
  memcpy(ports, s, h->nports * sizeof *s);
  memcpy(vteps, s + h->nports, h->nvteps * sizeof *s);
  *nports = h->nports;
  *nvteps = h->nvteps;
  free(x->snap); /* kept for the tenant and queue readers that follow */
  x->snap = raw;
  x->snap_ms = dp_now_ms();
}

unsigned dpx_tenant_stats(struct dpx *x, struct dp_io_stat *tenants) {
  if (x->dp) return dp_tenant_stats(x->dp, tenants);
  uint8_t *raw = NULL;
  size_t rl = 0;
  struct dpp_stats_hdr *h = stats_fetch(x, &raw, &rl, false);
  if (!h) return 0;
  const struct dp_io_stat *s = (const struct dp_io_stat *)(h + 1);
  unsigned n = h->ntenants;
  memcpy(tenants, s + h->nports + h->nvteps, n * sizeof *s);
  free(raw);
  return n;
}

unsigned dpx_queue_stats(struct dpx *x, uint64_t *encap_frames, uint64_t *decap_packets) {
  if (x->dp) return dp_queue_stats(x->dp, encap_frames, decap_packets);
  uint8_t *raw = NULL;
  size_t rl = 0;
  struct dpp_stats_hdr *h = stats_fetch(x, &raw, &rl, false);
  if (!h) return 0;
  unsigned n = h->nqueues;
  memcpy(encap_frames, h->encap_frames, n * sizeof *encap_frames);
  memcpy(decap_packets, h->decap_packets, n * sizeof *decap_packets);
  free(raw);
  return n;
}
