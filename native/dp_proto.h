/*
 * The wire between the addon (native/dpx.c) and the data path's own process (vtepd-dp,
 * native/bin/vtepd-dp.c). Both are built from this tree in one build, so requests carry C
 * structs as they are; DPP_CREATE checks that both ends agree on the version and sizes.
 *
 * fd 3 of the child: control, a stream socket. A request is a dpp_req and `len` bytes of
 * payload, its fds (SCM_RIGHTS) on the header; the reply a dpp_rep and `len` bytes, fds
 * likewise. One request at a time (the JS thread's calls), answered in order.
 * fd 4 of the child: events, a stream socket the child writes and the addon's reader
 * thread drains: a uint32 length, then that many bytes of event records (fastpath.h).
 */
#ifndef VTEPD_DP_PROTO_H
#define VTEPD_DP_PROTO_H

#include <stdint.h>

#include "fastpath.h"

#define DPP_VERSION 1
#define DPP_CTL_FD 3
#define DPP_EV_FD 4
#define DPP_MAX_FDS (DP_MAX_QUEUES > 1 + DP_MAX_SOURCE_PORTS ? DP_MAX_QUEUES : 1 + DP_MAX_SOURCE_PORTS)
#define DPP_ERR_LEN 256
/* Largest request or answer payload (a stats answer is about 1.2 MB). */
#define DPP_MAX_PAYLOAD (4u << 20)

enum dpp_op {
  DPP_CREATE = 1, /* dpp_create, adopt fds -> cipher name */
  DPP_START,
  DPP_STOP,
  DPP_UNDERLAY_FDS, /* -> fds */
  DPP_TENANT_SET,   /* dpp_ids {a tenant, b vni} */
  DPP_TENANT_DEL,   /* {a tenant} */
  DPP_TENANT_ACCEPT, /* {a tenant, b vtep, c accept} */
  DPP_TENANT_ACCEPT_ANY, /* {a, c} */
  DPP_TENANT_ENCAPS,     /* {a, b mask} */
  DPP_TENANT_RELAY,      /* {a, c} */
  DPP_TENANT_INNER_VLAN, /* {a, c} */
  DPP_TENANT_MSS,        /* {a, b mss4, c mss6} */
  DPP_TENANT_ENCRYPT,    /* {a, c} */
  DPP_PORT_SET_QUEUES,   /* {a port, b tenant, c vnet_hdr (int)}, the parent's n fd numbers; n fds */
  DPP_PORT_DEL,          /* {a port} */
  DPP_TRUNK_SET,         /* {a port, c vnet_hdr}, the parent's fd number; 1 fd */
  DPP_VLAN_PORT_SET,     /* {a port, b tenant, c trunk, d vlan} */
  DPP_VTEP_SET,          /* dpp_vtep */
  DPP_VTEP_DEL,          /* {a vtep} */
  DPP_SEND_CONTROL,      /* dpp_send, payload after it */
  DPP_KEY_RX_SET,        /* dpp_key */
  DPP_KEY_RX_DEL,        /* {a index} */
  DPP_KEY_TX_SET,        /* dpp_key {index: remote index} */
  DPP_KEY_TX_DEL,        /* {a vtep} */
  DPP_SEND_SECURE,       /* dpp_send {vtep}, payload after it */
  DPP_FDB_SET,           /* dpp_fdb */
  DPP_FDB_DEL,           /* dpp_fdb */
  DPP_FDB_IDLE,          /* -> records */
  DPP_TRANSMIT,          /* dpp_transmit, frame, ports, vteps -> uint32 sent */
  DPP_STATS,             /* -> dpp_stats_hdr, ports, vteps, tenants */
  DPP__COUNT
};

struct dpp_req {
  uint32_t op;
  uint32_t len;
  uint32_t nfds;
  uint32_t zero;
};

struct dpp_rep {
  int32_t err;
  uint32_t len;
  uint32_t nfds;
  uint32_t zero;
  char msg[DPP_ERR_LEN]; /* dp_last_error (or create's step) when err */
};

struct dpp_create {
  uint32_t version, config_size;
  struct dp_config cfg; /* adopt_fds NULL: the fds come with the request */
};

struct dpp_ids {
  uint32_t a, b;
  int32_t c;
  uint32_t d;
};

struct dpp_vtep {
  uint32_t vtep;
  socklen_t len;
  struct sockaddr_storage sa;
  struct dp_vtep_opts opts;
};

struct dpp_send {
  uint32_t vtep; /* DPP_SEND_SECURE */
  socklen_t len; /* DPP_SEND_CONTROL: sa */
  struct sockaddr_storage sa;
  uint8_t df, from_rx;
};

struct dpp_key {
  uint32_t index, vtep;
  uint8_t key[32];
};

struct dpp_fdb {
  uint32_t tenant, id;
  uint8_t mac[6];
  uint8_t kind, zero;
};

struct dpp_transmit {
  uint32_t tenant, len, nports, nvteps;
};

struct dpp_stats_hdr {
  uint64_t counters[DPC__COUNT];
  uint32_t nports, nvteps, ntenants, nqueues;
  uint64_t encap_frames[DP_MAX_QUEUES], decap_packets[DP_MAX_QUEUES];
};

#endif
