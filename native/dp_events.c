/*
 * Event records: what the fast path hands to TypeScript (a source MAC to learn, a frame to
 * flood, a liveness message, a frame too big for its path), queued in two halves that the
 * JS thread swaps and drains once per wake-up. Also source learning, which decides when a
 * source MAC is worth an event.
 */
#include <endian.h>
#include <pthread.h>
#include <string.h>

#include "dp_private.h"

/* ---- events ----------------------------------------------------------------------- */

size_t dp_event_record_len(uint8_t type, size_t frame_len) {
  return (DP_EVENT_HEADER + (type == DP_EV_LEARN ? 0 : frame_len) + 7) & ~(size_t)7;
}

void dp_event_encode(uint8_t *rec, const struct dp_event *ev, const uint8_t *frame, size_t frame_len) {
  const size_t len = dp_event_record_len(ev->type, frame_len);
  const uint32_t body = ev->type == DP_EV_LEARN ? 0 : (uint32_t)frame_len;
  struct dp_event_hdr h;
  memset(&h, 0, sizeof h);
  h.rec_len = htole32((uint32_t)len);
  h.type = ev->type;
  h.in_kind = ev->in_kind;
  h.outer_port = htole16(ev->outer_port);
  h.tenant_id = htole32(ev->tenant_id);
  h.in_id = htole32(ev->in_id);
  memcpy(h.outer_addr, ev->outer_addr, sizeof h.outer_addr);
  h.family = ev->family;
  h.encap = ev->encap;
  /* Ethernet frames only: EV_CONTROL and EV_SECURE carry a UDP payload, EV_KEY_USED and
   * EV_ENDPOINT nothing. */
  if (ev->type == DP_EV_LEARN || ev->type == DP_EV_MISS || ev->type == DP_EV_TOO_BIG)
    memcpy(h.src_mac, frame + PKT_ETH_ALEN, PKT_ETH_ALEN);
  h.frame_len = htole32(body);
  h.out_id = htole32(ev->out_id);
  memcpy(rec, &h, sizeof h);
  if (body) memcpy(rec + sizeof h, frame, body);
  memset(rec + sizeof h + body, 0, len - sizeof h - body);
}

/* Queue one record; frame + 6 is the source MAC (not for EV_CONTROL and EV_SECURE, whose
 * "frame" is a UDP payload); the frame (or payload) follows for every type but EV_LEARN. */
bool ev_emit_ex(struct dp_worker *w, uint8_t type, uint8_t in_kind, uint32_t tenant, uint32_t in_id,
                const struct dp_addr *outer, uint16_t outer_port, const uint8_t *frame, size_t frame_len, uint32_t out_id,
                struct dp_io_counters *io) {
  struct dp_evq *q = &w->dp->evq;
  struct dp_event ev = {.type = type, .in_kind = in_kind, .outer_port = outer_port, .tenant_id = tenant, .in_id = in_id,
                        .out_id = out_id};
  if (outer) {
    const uint8_t encap = outer->zero[0] >> DP_ADDR_ENCAP_SHIFT;
    memcpy(ev.outer_addr, outer->bytes, sizeof ev.outer_addr);
    ev.family = outer->family;
    ev.encap = encap ? encap : DP_ENCAP_VXLAN;
  }
  const size_t rec = dp_event_record_len(type, frame_len);
  pthread_mutex_lock(&q->mu);
  bool fits = q->len + rec <= DP_EVQ_HALF;
  if (fits) {
    dp_event_encode(q->half[q->cur] + q->len, &ev, frame, frame_len);
    q->len += rec;
  }
  pthread_mutex_unlock(&q->mu);
  if (!fits) {
    drop(w, DPC_event_queue_full, io);
    return false;
  }
  w->events_queued = true;
  return true;
}

void dp_events_take(struct dp *dp, const uint8_t **data, size_t *len) {
  struct dp_evq *q = &dp->evq;
  pthread_mutex_lock(&q->mu);
  *data = q->half[q->cur];
  *len = q->len;
  q->cur ^= 1;
  q->len = 0;
  pthread_mutex_unlock(&q->mu);
}

/* After a batch: one wake-up of the JS thread, however many events the batch queued. */
void worker_notify(struct dp_worker *w) {
  if (!w->events_queued) return;
  w->events_queued = false;
  if (w->dp->notify) w->dp->notify(w->dp->notify_arg);
}

/*
 * Source learning: TypeScript decides (limits, moves, ageing); the fast path reports a
 * source MAC that the cache does not have at this place, at most once per LEARN_SEEN_MS
 * per (tenant, MAC, place). A hit at the same place only refreshes last_seen.
 */
void learn(struct dp_worker *w, uint32_t tenant, const uint8_t *frame, uint8_t in_kind, uint32_t in_id,
           const struct dp_addr *outer, uint16_t outer_port, struct dp_io_counters *io) {
  uint64_t key = fdb_key(tenant, frame + PKT_ETH_ALEN);
  uint32_t place;
  if (in_kind == DP_IN_UNKNOWN_VTEP) {
    place = (uint32_t)in_kind << 24 | (addr_hash(outer) & 0xffffff); /* no cache place to compare */
  } else {
    uint8_t kind = in_kind == DP_IN_PORT ? FDB_KIND_PORT : FDB_KIND_VTEP;
    struct fdb_entry *e = fdb_lookup(&w->dp->fdb, key);
    if (e && e->kind == kind && e->id == in_id) {
      fdb_touch(e, w->now_ms);
      return;
    }
    place = (uint32_t)in_kind << 24 | in_id;
  }
  uint32_t h = pkt_hash_mix(pkt_hash_mix(0, (uint32_t)key), (uint32_t)(key >> 32));
  struct learn_seen *set = w->seen[pkt_hash_final(pkt_hash_mix(h, place)) & (LEARN_SEEN_SETS - 1)];
  struct learn_seen *victim = &set[0];
  for (int i = 0; i < LEARN_SEEN_WAYS; i++) {
    struct learn_seen *s = &set[i];
    uint32_t age = w->now_ms - s->at_ms;
    if (s->key == key && s->place == place) {
      if (age < LEARN_SEEN_MS) return;
      victim = s;
      break;
    }
    if (s->key == 0 || age > (uint32_t)(w->now_ms - victim->at_ms)) victim = s; /* empty or oldest */
  }
  if (!ev_emit(w, DP_EV_LEARN, in_kind, tenant, in_id, outer, outer_port, frame, 0, io)) return;
  victim->key = key;
  victim->place = place;
  victim->at_ms = w->now_ms;
  count(w, DPC_learn_events);
}

/* Broadcast, multicast or unknown unicast: the whole frame goes to TypeScript to flood. */
void punt(struct dp_worker *w, uint32_t tenant, uint8_t in_kind, uint32_t in_id, const struct dp_addr *outer,
          uint16_t outer_port, const uint8_t *frame, size_t len, struct dp_io_counters *io) {
  if (ev_emit(w, DP_EV_MISS, in_kind, tenant, in_id, outer, outer_port, frame, len, io))
    count(w, DPC_punted_frames);
}
