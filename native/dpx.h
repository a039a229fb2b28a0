/*
 * A data path here or in a process of its own (#18). dpx_* mirror fastpath.h's dp_* one for
 * one: with exe NULL, dpx_create makes the data path in this process and every call goes
 * straight to dp_*; with exe, it spawns that executable (vtepd-dp, native/bin/vtepd-dp.c) and
 * every call is carried to it over a socketpair (native/dp_proto.h). The child owns the
 * sockets, the threads and the tables; its threads never share page tables with node's.
 *
 * Why a process of its own: on a VM whose hypervisor shadows page tables, a thread that
 * wakes after a while asleep pays in proportion to its process's resident 4 KB pages
 * (docs/performance.md, "What the long runs at -i 0.2 are"). node's process has ~90 MB of
 * them; vtepd-dp a few.
 *
 * If the child dies, every later control call returns EPIPE and no event arrives again;
 * dpx_process says how it ended. If it stops answering (stopped, stuck), the call waiting on
 * it ends it after 5 s and returns ETIMEDOUT: the JS thread never waits longer. Event records
 * the reader here had no room for are counted in event_queue_full, as in process. Respawning it and replaying the tables is TypeScript's
 * (which owns them), not this file's.
 */
#ifndef VTEPD_DPX_H
#define VTEPD_DPX_H

#include <sys/types.h>

#include "fastpath.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dpx;

int dpx_create(const struct dp_config *cfg, const char *exe, struct dpx **out, const char **step);
void dpx_destroy(struct dpx *x);
const char *dpx_last_error(const struct dpx *x);
int dpx_start(struct dpx *x, void (*notify)(void *), void *arg);
void dpx_stop(struct dpx *x);
unsigned dpx_underlay_fds(struct dpx *x, int *fds);
void dpx_events_take(struct dpx *x, const uint8_t **data, size_t *len);

/* 0 for a data path in this process; else the child's PID. *alive: still running; exit: how
 * it ended ("exited with status 1", "killed by signal 9"), room for 64 bytes. Reaps it. */
pid_t dpx_process(struct dpx *x, bool *alive, char *exit, size_t exit_len);

int dpx_tenant_set(struct dpx *x, uint32_t tenant, uint32_t vni);
int dpx_tenant_del(struct dpx *x, uint32_t tenant);
int dpx_tenant_accept(struct dpx *x, uint32_t tenant, uint32_t vtep, bool accept);
int dpx_tenant_accept_any(struct dpx *x, uint32_t tenant, bool any);
int dpx_tenant_encaps(struct dpx *x, uint32_t tenant, unsigned mask);
int dpx_tenant_relay(struct dpx *x, uint32_t tenant, bool relay);
int dpx_tenant_inner_vlan(struct dpx *x, uint32_t tenant, bool allow);
int dpx_tenant_mss(struct dpx *x, uint32_t tenant, uint16_t mss4, uint16_t mss6);
int dpx_tenant_encrypt(struct dpx *x, uint32_t tenant, bool required);
int dpx_port_set_queues(struct dpx *x, uint32_t port, uint32_t tenant, const int *fds, unsigned n, int vnet_hdr);
int dpx_port_del(struct dpx *x, uint32_t port);
int dpx_trunk_set(struct dpx *x, uint32_t port, int fd, int vnet_hdr);
int dpx_vlan_port_set(struct dpx *x, uint32_t port, uint32_t tenant, uint32_t trunk, uint32_t vlan);
int dpx_vtep_set_ex(struct dpx *x, uint32_t vtep, const struct sockaddr_storage *sa, socklen_t len,
                    const struct dp_vtep_opts *opts);
int dpx_vtep_del(struct dpx *x, uint32_t vtep);
int dpx_send_control(struct dpx *x, const struct sockaddr_storage *sa, socklen_t len, const uint8_t *payload, size_t n,
                     bool df, bool from_rx);
int dpx_key_rx_set(struct dpx *x, uint32_t index, uint32_t vtep, const uint8_t key[32]);
int dpx_key_rx_del(struct dpx *x, uint32_t index);
int dpx_key_tx_set(struct dpx *x, uint32_t vtep, uint32_t remote_index, const uint8_t key[32]);
int dpx_key_tx_del(struct dpx *x, uint32_t vtep);
int dpx_send_secure(struct dpx *x, uint32_t vtep, const uint8_t *payload, size_t n, bool df);
const char *dpx_cipher(const struct dpx *x);
int dpx_fdb_set(struct dpx *x, uint32_t tenant, const uint8_t mac[6], uint8_t kind, uint32_t id);
int dpx_fdb_del(struct dpx *x, uint32_t tenant, const uint8_t mac[6]);
int dpx_fdb_idle(struct dpx *x, uint8_t **out, size_t *len);
int dpx_transmit(struct dpx *x, uint32_t tenant, const uint8_t *frame, size_t len, const uint32_t *ports,
                 size_t nports, const uint32_t *vteps, size_t nvteps, uint32_t *sent);
void dpx_stats_read(struct dpx *x, uint64_t counters[DPC__COUNT], struct dp_io_stat *ports, uint32_t *nports,
                    struct dp_io_stat *vteps, uint32_t *nvteps);
unsigned dpx_tenant_stats(struct dpx *x, struct dp_io_stat *tenants);
unsigned dpx_queue_stats(struct dpx *x, uint64_t *encap_frames, uint64_t *decap_packets);

#ifdef __cplusplus
}
#endif

#endif
