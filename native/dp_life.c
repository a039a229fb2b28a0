/*
 * Lifecycle: dp_create opens the underlay sockets (or adopts them) and allocates the
 * workers (per thread: buffers, transmit queue, counters); dp_start starts a thread pair
 * per queue; dp_stop joins them and closes the sockets; dp_destroy frees everything.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "dp_private.h"
#include "rawip.h"
#include "udp.h"

uint64_t dp_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static struct dp_worker *worker_new(struct dp *dp, const char *name, unsigned nbufs) {
  struct dp_worker *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->dp = dp;
  w->name = name;
  w->epfd = -1;
  w->bufs = aligned_alloc(64, (size_t)nbufs * DP_BUF_SIZE);
  w->scratch = aligned_alloc(64, DP_BUF_SIZE);
  w->arena = aligned_alloc(64, DP_TX_ARENA);
  w->endpoint_ms = calloc(DP_MAX_VTEPS, sizeof *w->endpoint_ms);
  if (!w->bufs || !w->scratch || !w->arena || !w->endpoint_ms) {
    free(w->bufs);
    free(w->scratch);
    free(w->arena);
    free(w->endpoint_ms);
    free(w);
    return NULL;
  }
  for (unsigned i = 0; i < DP_BATCH && i < nbufs; i++) {
    w->rx_iov[i].iov_base = worker_buf(w, i); /* headroom kept: re-encap in place later */
    w->rx_iov[i].iov_len = DP_BUF_SIZE - DP_HEADROOM;
    w->rx[i].msg_hdr.msg_name = &w->rx_name[i];
    w->rx[i].msg_hdr.msg_namelen = sizeof w->rx_name[i];
    w->rx[i].msg_hdr.msg_iov = &w->rx_iov[i];
    w->rx[i].msg_hdr.msg_iovlen = 1;
    w->rx[i].msg_hdr.msg_control = w->rx_cmsg[i].buf;
    w->rx[i].msg_hdr.msg_controllen = sizeof w->rx_cmsg[i].buf;
  }
  return w;
}

static void worker_free(struct dp_worker *w) {
  if (!w) return;
  free(w->bufs);
  free(w->scratch);
  free(w->arena);
  free(w->endpoint_ms);
  aead_cache_free(&w->aead);
  free(w);
}

/*
 * Liveness and NAT'd traffic leave from a family's receive socket: DF always, and the size
 * asked for, not the kernel's cached path MTU (PMTU probes find the real one).
 */
static void rx_sends_as_asked(int fd, int family) {
  int probe = family == AF_INET ? IP_PMTUDISC_PROBE : IPV6_PMTUDISC_PROBE;
  if (family == AF_INET) setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
  else setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof probe);
}

int dp_create(const struct dp_config *cfg, struct dp **out, const char **step) {
  struct dp *dp = calloc(1, sizeof *dp);
  if (!dp) {
    *step = "calloc";
    return ENOMEM;
  }
  dp->rx_fd = dp->gre_fd = dp->stopfd = -1;
  for (unsigned q = 0; q < DP_MAX_QUEUES; q++) dp->q_epfd[q] = dp->q_rx_fd[q] = dp->q_wake_fd[q] = -1;
  const char *merge = getenv("VTEPD_MERGE");
  dp->merge_on = !(merge && strcmp(merge, "0") == 0);
  dp->alt.rx_fd = dp->alt.gre_fd = -1;
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* Writers (control calls) must not starve behind back-to-back fast-path batches. */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&dp->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  pthread_mutex_init(&dp->evq.mu, NULL);
  dp->family = cfg->local.ss_family;
  dp->ncpus = cfg->ncpus <= DP_MAX_CPUS ? cfg->ncpus : DP_MAX_CPUS;
  memcpy(dp->cpus, cfg->cpus, sizeof dp->cpus);
  dp->port = sockaddr_port(&cfg->local);

  int err;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
  if ((err = fdb_init(&dp->fdb, DP_FDB_CAPACITY)) != 0) {
    *step = "FDB allocation";
    goto fail;
  }
  if ((err = sec_init(dp, cfg->cipher, step)) != 0) goto fail;
  dp->evq.half[0] = malloc(DP_EVQ_HALF);
  dp->evq.half[1] = malloc(DP_EVQ_HALF);
  dp->nqueues = cfg->queues ? cfg->queues : 1;
  if (dp->nqueues > DP_MAX_QUEUES || (dp->nqueues > 1 && cfg->adopt_n)) {
    err = EINVAL;
    *step = dp->nqueues > DP_MAX_QUEUES ? "queues (1..8)" : "queues (adopted sockets take one queue)";
    goto fail;
  }
  for (unsigned q = 0; q < dp->nqueues; q++) {
    dp->q_encap[q] = worker_new(dp, "vtepd-encap", DP_BATCH);
    dp->q_decap[q] = worker_new(dp, "vtepd-decap", DP_BATCH);
    if (!dp->q_encap[q] || !dp->q_decap[q]) break;
    dp->q_encap[q]->queue = dp->q_decap[q]->queue = q;
    dp->q_encap[q]->is_encap = true;
    /* Thread names: vtepd-encap, vtepd-decap for queue 0; vtepd-encap1, … for the others. */
    if (q) {
      snprintf(dp->q_encap[q]->name_buf, sizeof dp->q_encap[q]->name_buf, "vtepd-encap%u", q);
      snprintf(dp->q_decap[q]->name_buf, sizeof dp->q_decap[q]->name_buf, "vtepd-decap%u", q);
      dp->q_encap[q]->name = dp->q_encap[q]->name_buf;
      dp->q_decap[q]->name = dp->q_decap[q]->name_buf;
    }
  }
  dp->encap = dp->q_encap[0];
  dp->decap = dp->q_decap[0];
  dp->ctrl = worker_new(dp, "vtepd-ctrl", 1);
  if (!dp->evq.half[0] || !dp->evq.half[1] || !dp->q_encap[dp->nqueues - 1] || !dp->q_decap[dp->nqueues - 1] || !dp->ctrl) {
    err = ENOMEM;
    *step = "buffer allocation";
    goto fail;
  }
  if ((dp->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
    err = errno;
    *step = "eventfd";
    goto fail;
  }
  for (unsigned q = 0; q < dp->nqueues; q++) {
    if ((dp->q_epfd[q] = epoll_create1(EPOLL_CLOEXEC)) < 0) {
      err = errno;
      *step = "epoll_create1";
      goto fail;
    }
    dp->q_encap[q]->epfd = dp->q_epfd[q];
    if ((dp->q_wake_fd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
      err = errno;
      *step = "eventfd";
      goto fail;
    }
    if (epoll_ctl(dp->q_epfd[q], EPOLL_CTL_ADD, dp->stopfd, &ev) < 0) {
      err = errno;
      *step = "epoll_ctl";
      goto fail;
    }
  }
  /* The raw GRE socket is never adopted (a takeover's successor opens its own). */
  if (cfg->gre && (err = rawip_open(&cfg->local, cfg->local_len, IPPROTO_GRE, &dp->gre_fd, step)) != 0) {
    if (*step && strcmp(*step, "socket") == 0) *step = "raw IPPROTO_GRE socket (GRE-TAP/NVGRE need CAP_NET_RAW)";
    goto fail;
  }
  /* Dual stack: the other family's sockets, same UDP port (also before the adopted ones). */
  if (cfg->local2_len) {
    if (cfg->local2.ss_family == cfg->local.ss_family || (cfg->local2.ss_family != AF_INET && cfg->local2.ss_family != AF_INET6)) {
      err = EINVAL;
      *step = "local2 (must be of the other address family)";
      goto fail;
    }
    struct sockaddr_storage l2 = cfg->local2;
    if (l2.ss_family == AF_INET) ((struct sockaddr_in *)&l2)->sin_port = htons(dp->port);
    else ((struct sockaddr_in6 *)&l2)->sin6_port = htons(dp->port);
    if (cfg->gre && (err = rawip_open(&l2, cfg->local2_len, IPPROTO_GRE, &dp->alt.gre_fd, step)) != 0) goto fail;
    if ((err = udp_rx_open(&l2, cfg->local2_len, false, &dp->alt.rx_fd, step)) != 0) goto fail;
    if ((err = udp_tx_pool_open(&l2, cfg->local2_len, cfg->source_ports, dp->port, dp->alt.tx_fd, step)) != 0) goto fail;
    dp->alt.ntx = cfg->source_ports;
    dp->alt.family = l2.ss_family;
    rx_sends_as_asked(dp->alt.rx_fd, l2.ss_family);
    if (!cfg->no_offloads) udp_rx_gro_enable(dp->alt.rx_fd);
  }
  /* Sockets last: a failure before here leaves adopted descriptors to the caller. */
  if (cfg->adopt_n) {
    if ((err = udp_adopt(&cfg->local, cfg->adopt_fds, cfg->adopt_n, step)) != 0) goto fail;
    dp->rx_fd = cfg->adopt_fds[0];
    for (unsigned i = 1; i < cfg->adopt_n; i++) dp->tx_fd[i - 1] = cfg->adopt_fds[i];
    dp->ntx = cfg->adopt_n - 1;
  } else {
    if ((err = udp_rx_open(&cfg->local, cfg->local_len, dp->nqueues > 1, &dp->rx_fd, step)) != 0) goto fail;
    /* Queues 1..: more receive sockets on the same address and port, in one reuseport group. */
    for (unsigned q = 1; q < dp->nqueues; q++)
      if ((err = udp_rx_open(&cfg->local, cfg->local_len, true, &dp->q_rx_fd[q], step)) != 0) goto fail;
    if ((err = udp_tx_pool_open(&cfg->local, cfg->local_len, cfg->source_ports, dp->port, dp->tx_fd, step)) != 0)
      goto fail;
    dp->ntx = cfg->source_ports;
    if (dp->nqueues > 1 && dp->family == AF_INET) {
      /* Shared by the encap threads: UDP checksums stay on (trains need them). */
      int off = 0;
      for (unsigned i = 0; i < dp->ntx; i++) setsockopt(dp->tx_fd[i], SOL_SOCKET, SO_NO_CHECK, &off, sizeof off);
    }
  }
  dp->uso_write_ok = !cfg->no_offloads;
  rx_sends_as_asked(dp->rx_fd, dp->family);
  dp->gro_on = !cfg->no_offloads && udp_rx_gro_enable(dp->rx_fd);
  /* The other queues' receive sockets only receive (nothing is sent from them). */
  for (unsigned q = 1; q < dp->nqueues && dp->gro_on; q++) udp_rx_gro_enable(dp->q_rx_fd[q]);
  dp->gso_ok = !cfg->no_offloads && udp_tx_gso_probe(dp->tx_fd[0]);
  *out = dp;
  return 0;
fail:
  dp_destroy(dp);
  return err;
}

/* underlay.cpus: queue q's encap and decap threads on CPU cpus[q % ncpus]; 0 or an errno. */
static int pin_queue(struct dp *dp, unsigned q) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(dp->cpus[q % dp->ncpus], &set);
  int err = pthread_setaffinity_np(dp->q_encap[q]->thread, sizeof set, &set);
  return err ? err : pthread_setaffinity_np(dp->q_decap[q]->thread, sizeof set, &set);
}

int dp_start(struct dp *dp, void (*notify)(void *), void *arg) {
  if (dp->stopped) return dp_fail(dp, ESHUTDOWN, "the data path was stopped");
  if (dp->started) return dp_fail(dp, EALREADY, "the data path is already started");
  dp->notify = notify;
  dp->notify_arg = arg;
  /* Signals stay with Node's threads: ours start with all of them blocked. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = 0;
  for (unsigned q = 0; q < dp->nqueues && !err; q++) {
    err = pthread_create(&dp->q_encap[q]->thread, NULL, encap_main, dp->q_encap[q]);
    if (err) break;
    dp->q_encap[q]->running = true;
    err = pthread_create(&dp->q_decap[q]->thread, NULL, decap_main, dp->q_decap[q]);
    if (!err) dp->q_decap[q]->running = true;
    if (!err && dp->ncpus && (err = pin_queue(dp, q)) != 0) {
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      dp->started = true;
      dp_stop(dp);
      return dp_fail(dp, err, "underlay.cpus: cannot pin queue %u's threads to CPU %d (not one this process may run on)", q,
                     dp->cpus[q % dp->ncpus]);
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  dp->started = true;
  if (err) {
    dp_stop(dp);
    return dp_fail(dp, err, "pthread_create failed");
  }
  return 0;
}

void dp_stop(struct dp *dp) {
  if (dp->stopped) return;
  dp->stopped = true;
  if (dp->started) {
    uint64_t one = 1;
    __atomic_store_n(&dp->stopping, 1, __ATOMIC_RELEASE);
    ssize_t r = write(dp->stopfd, &one, sizeof one);
    (void)r;
    for (unsigned q = 0; q < dp->nqueues; q++) {
      if (dp->q_encap[q]->running) pthread_join(dp->q_encap[q]->thread, NULL);
      if (dp->q_decap[q]->running) pthread_join(dp->q_decap[q]->thread, NULL);
      dp->q_encap[q]->running = dp->q_decap[q]->running = false;
    }
  }
  dp->notify = NULL;
  if (dp->rx_fd >= 0) close(dp->rx_fd);
  dp->rx_fd = -1;
  for (unsigned q = 1; q < DP_MAX_QUEUES; q++) {
    if (dp->q_rx_fd[q] >= 0) close(dp->q_rx_fd[q]);
    dp->q_rx_fd[q] = -1;
  }
  if (dp->gre_fd >= 0) close(dp->gre_fd);
  dp->gre_fd = -1;
  if (dp->alt.rx_fd >= 0) close(dp->alt.rx_fd);
  if (dp->alt.gre_fd >= 0) close(dp->alt.gre_fd);
  for (unsigned i = 0; i < dp->alt.ntx; i++) close(dp->alt.tx_fd[i]);
  dp->alt.rx_fd = dp->alt.gre_fd = -1;
  dp->alt.ntx = 0;
  for (unsigned i = 0; i < dp->ntx; i++) close(dp->tx_fd[i]);
  dp->ntx = 0;
}

unsigned dp_underlay_fds(struct dp *dp, int *fds) {
  /* Several queues: their reuseport group is not handed over (the successor binds anew). */
  if (dp->stopped || dp->rx_fd < 0 || dp->nqueues > 1) return 0;
  fds[0] = dp->rx_fd;
  for (unsigned i = 0; i < dp->ntx; i++) fds[1 + i] = dp->tx_fd[i];
  return 1 + dp->ntx;
}


void dp_destroy(struct dp *dp) {
  if (!dp) return;
  dp_stop(dp);
  for (unsigned q = 0; q < DP_MAX_QUEUES; q++)
    if (dp->q_epfd[q] >= 0) close(dp->q_epfd[q]);
  for (unsigned q = 0; q < DP_MAX_QUEUES; q++)
    if (dp->q_wake_fd[q] >= 0) close(dp->q_wake_fd[q]);
  if (dp->stopfd >= 0) close(dp->stopfd);
  for (unsigned q = 0; q < DP_MAX_QUEUES; q++) {
    worker_free(dp->q_encap[q]);
    worker_free(dp->q_decap[q]);
  }
  worker_free(dp->ctrl);
  free(dp->evq.half[0]);
  free(dp->evq.half[1]);
  fdb_free(&dp->fdb);
  sec_free(dp);
  for (uint32_t t = 1; t < dp->hi_tenant; t++) free(dp->tenants[t].accept);
  for (uint32_t i = 1; i < dp->hi_port; i++) free(dp->ports[i].vmap);
  pthread_mutex_destroy(&dp->evq.mu);
  pthread_rwlock_destroy(&dp->lock);
  free(dp);
}
