/*
 * Counters: their names, help and drop flags (counters.def), and one set per thread
 * (encap, decap, control), summed on read.
 */
#include <string.h>

#include "dp_private.h"

const struct dp_counter_info dp_counters[DPC__COUNT] = {
#define C(name, help) {#name, help, false},
#define D(name, help) {#name, help, true},
#include "counters.def"
#undef C
#undef D
};

/* ---- control (JS thread) ------------------------------------------------------------ */

/* Every worker: the queues' pairs, then the control worker. Returns how many. */
static unsigned all_workers(struct dp *dp, struct dp_worker **ws) {
  unsigned n = 0;
  for (unsigned q = 0; q < dp->nqueues; q++) {
    ws[n++] = dp->q_encap[q];
    ws[n++] = dp->q_decap[q];
  }
  ws[n++] = dp->ctrl;
  return n;
}

static struct dp_io_counters *io_of(struct dp_worker *w, enum io_kind k, uint32_t id) {
  return k == IO_PORT ? &w->stats.port[id] : k == IO_VTEP ? &w->stats.vtep[id] : &w->stats.tenant[id];
}

/* A new port, VTEP or tenant starts from zero counters in every thread's set. Write lock held. */
void io_reset(struct dp *dp, enum io_kind k, uint32_t id) {
  struct dp_worker *ws[2 * DP_MAX_QUEUES + 1];
  unsigned nw = all_workers(dp, ws);
  for (unsigned i = 0; i < nw; i++) memset(io_of(ws[i], k, id), 0, sizeof(struct dp_io_counters));
}

static void io_sum(struct dp *dp, enum io_kind k, uint32_t id, struct dp_io_counters *out) {
  struct dp_worker *ws[2 * DP_MAX_QUEUES + 1];
  unsigned nw = all_workers(dp, ws);
  memset(out, 0, sizeof *out);
  for (unsigned i = 0; i < nw; i++) {
    const struct dp_io_counters *c = io_of(ws[i], k, id);
    out->rx_packets += ctr_get(&c->rx_packets);
    out->rx_bytes += ctr_get(&c->rx_bytes);
    out->tx_packets += ctr_get(&c->tx_packets);
    out->tx_bytes += ctr_get(&c->tx_bytes);
    out->drops += ctr_get(&c->drops);
  }
}

void dp_stats_read(struct dp *dp, uint64_t counters[DPC__COUNT], struct dp_io_stat *ports, uint32_t *nports,
                   struct dp_io_stat *vteps, uint32_t *nvteps) {
  struct dp_worker *ws[2 * DP_MAX_QUEUES + 1];
  unsigned nw = all_workers(dp, ws);
  for (int c = 0; c < DPC__COUNT; c++) {
    counters[c] = 0;
    for (unsigned i = 0; i < nw; i++) counters[c] += ctr_get(&ws[i]->stats.c[c]);
  }
  pthread_rwlock_rdlock(&dp->lock); /* in_use is stable only under the lock */
  *nports = *nvteps = 0;
  for (uint32_t id = 1; id < dp->hi_port; id++) {
    if (!dp->ports[id].in_use) continue;
    ports[*nports].id = id;
    io_sum(dp, IO_PORT, id, &ports[(*nports)++].c);
  }
  for (uint32_t id = 1; id < dp->hi_vtep; id++) {
    if (!dp->vteps[id].in_use) continue;
    vteps[*nvteps].id = id;
    io_sum(dp, IO_VTEP, id, &vteps[(*nvteps)++].c);
  }
  pthread_rwlock_unlock(&dp->lock);
}

unsigned dp_tenant_stats(struct dp *dp, struct dp_io_stat *tenants) {
  unsigned n = 0;
  pthread_rwlock_rdlock(&dp->lock);
  for (uint32_t id = 1; id < dp->hi_tenant; id++) {
    if (!dp->tenants[id].in_use) continue;
    tenants[n].id = id;
    io_sum(dp, IO_TENANT, id, &tenants[n++].c);
  }
  pthread_rwlock_unlock(&dp->lock);
  return n;
}

unsigned dp_queue_stats(struct dp *dp, uint64_t *encap_frames, uint64_t *decap_packets) {
  for (unsigned q = 0; q < dp->nqueues; q++) {
    /* The decap thread reads ports too, answering a reply (reply_ports). */
    encap_frames[q] = ctr_get(&dp->q_encap[q]->stats.c[DPC_tap_rx_frames]) + ctr_get(&dp->q_decap[q]->stats.c[DPC_tap_rx_frames]);
    /* And the encap thread reads the underlay while its queue is merged. */
    decap_packets[q] = ctr_get(&dp->q_decap[q]->stats.c[DPC_underlay_rx_packets]) + ctr_get(&dp->q_encap[q]->stats.c[DPC_underlay_rx_packets]);
  }
  return dp->nqueues;
}

