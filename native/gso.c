#include "gso.h"

#include <string.h>

#include "csum.h"
#include "packet.h"

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86DD
#define ETHERTYPE_8021Q 0x8100
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IP4_DF 0x4000

/* Link header and IP header; l4 left at the natural place (after IPv4 options / the
 * fixed IPv6 header). */
static bool l3_parse(const uint8_t *f, size_t len, struct l34 *h) {
  if (len < 14) return false;
  size_t l3 = 14;
  uint16_t type = pkt_get16(f + 12);
  if (type == ETHERTYPE_8021Q) {
    if (len < 18) return false;
    type = pkt_get16(f + 16);
    l3 = 18;
  }
  if (type == ETHERTYPE_IPV4) {
    if (len < l3 + 20 || f[l3] >> 4 != 4) return false;
    size_t ihl = (size_t)(f[l3] & 15) * 4;
    if (ihl < 20 || len < l3 + ihl) return false;
    if (pkt_get16(f + l3 + 6) & 0x3fff) return false; /* a fragment: no L4 header to speak of */
    h->v6 = 0;
    h->proto = f[l3 + 9];
    h->l4 = (uint16_t)(l3 + ihl);
  } else if (type == ETHERTYPE_IPV6) {
    if (len < l3 + 40 || f[l3] >> 4 != 6) return false;
    h->v6 = 1;
    h->proto = f[l3 + 6];
    h->l4 = (uint16_t)(l3 + 40);
  } else {
    return false;
  }
  h->l3 = (uint16_t)l3;
  return true;
}

static bool l4_parse(const uint8_t *f, size_t len, struct l34 *h) {
  if (h->proto == IPPROTO_TCP_) {
    if (len < (size_t)h->l4 + 20) return false;
    size_t doff = (size_t)(f[h->l4 + 12] >> 4) * 4;
    if (doff < 20 || len < h->l4 + doff) return false;
    h->hdr_len = (uint16_t)(h->l4 + doff);
    return true;
  }
  if (h->proto == IPPROTO_UDP_) {
    if (len < (size_t)h->l4 + 8) return false;
    h->hdr_len = (uint16_t)(h->l4 + 8);
    return true;
  }
  return false;
}

bool l34_parse(const uint8_t *frame, size_t len, struct l34 *out) {
  return l3_parse(frame, len, out) && l4_parse(frame, len, out);
}

/* Bytes of IP datagram the header claims (IPv4 total length, IPv6 40 + payload length). */
static inline size_t ip_claimed_len(const uint8_t *f, const struct l34 *h) {
  return h->v6 ? 40u + pkt_get16(f + h->l3 + 4) : pkt_get16(f + h->l3 + 2);
}

static inline uint32_t pseudo_nolen(const uint8_t *f, const struct l34 *h, uint8_t proto) {
  const uint8_t *ip = f + h->l3;
  return h->v6 ? csum_pseudo6(ip + 8, ip + 24, proto, 0) : csum_pseudo4(ip + 12, ip + 16, proto, 0);
}

/* The length term of the pseudo-header (32 bits for IPv6, 16 for IPv4: the same partial below 64 KB). */
static inline uint32_t pseudo_len(uint32_t l4len) { return csum_be32(l4len); }

enum gso_result gso_plan(const struct vnet_hdr *vh, const uint8_t *f, size_t len, struct gso_plan *p) {
  uint8_t type = vh->gso_type & (uint8_t)~VNET_GSO_ECN;
  uint8_t want_proto;
  int want_v6;
  switch (type) {
  case VNET_GSO_TCPV4: want_proto = IPPROTO_TCP_; want_v6 = 0; break;
  case VNET_GSO_TCPV6: want_proto = IPPROTO_TCP_; want_v6 = 1; break;
  case VNET_GSO_UDP_L4: want_proto = IPPROTO_UDP_; want_v6 = -1; break;
  default: return GSO_UNSUPPORTED;
  }
  if (vh->gso_size == 0 || len > GSO_MAX_FRAME) return GSO_BAD_HEADER;
  memset(p, 0, sizeof *p);
  if (!l3_parse(f, len, &p->h)) return GSO_BAD_HEADER;
  if (want_v6 >= 0 && p->h.v6 != want_v6) return GSO_BAD_HEADER;
  if (vh->flags & VNET_F_NEEDS_CSUM) {
    /* The kernel says where L4 starts: this also covers IPv6 extension headers. */
    if (vh->csum_start < p->h.l4 || vh->csum_offset != (want_proto == IPPROTO_TCP_ ? 16 : 6)) return GSO_BAD_HEADER;
    if (vh->csum_start != p->h.l4) {
      if (!p->h.v6) return GSO_BAD_HEADER; /* IPv4 options are inside ihl */
      p->h.l4 = vh->csum_start;
    }
    p->h.proto = want_proto;
  } else if (p->h.proto != want_proto) {
    return p->h.v6 ? GSO_UNSUPPORTED : GSO_BAD_HEADER; /* IPv6 extension headers without csum_start */
  }
  if (!l4_parse(f, len, &p->h)) return GSO_BAD_HEADER;
  if (p->h.hdr_len > GSO_MAX_HDR || len <= p->h.hdr_len) return GSO_BAD_HEADER;
  if (ip_claimed_len(f, &p->h) != len - p->h.l3) return GSO_BAD_HEADER;
  p->gso_type = type;
  p->mss = vh->gso_size;
  p->payload = (uint32_t)(len - p->h.hdr_len);
  p->nseg = (p->payload + p->mss - 1) / p->mss;
  if (want_proto == IPPROTO_TCP_) {
    p->seq0 = pkt_get32(f + p->h.l4 + 4);
    p->flags0 = f[p->h.l4 + 13];
  }
  if (!p->h.v6) p->id0 = pkt_get16(f + p->h.l3 + 4);
  p->pseudo = pseudo_nolen(f, &p->h, want_proto);
  return GSO_OK;
}

void gso_segment(const struct gso_plan *p, const uint8_t *f, uint32_t first, uint32_t count, uint8_t *hdrs,
                 size_t slot) {
  const struct l34 *h = &p->h;
  const size_t l4hl = (size_t)(h->hdr_len - h->l4);
  const bool tcp = h->proto == IPPROTO_TCP_;
  const uint8_t *payload0 = f + h->hdr_len;

  /* IPv4 header template for a full segment, checksummed once; per segment the id (and
   * for a short last segment the length) is patched incrementally (RFC 1624). */
  uint16_t full_tot = 0, tmpl_check = 0, tmpl_id = 0;
  if (!h->v6) {
    uint8_t ip[60];
    size_t ihl = (size_t)(h->l4 - h->l3);
    memcpy(ip, f + h->l3, ihl);
    full_tot = (uint16_t)(ihl + l4hl + p->mss);
    pkt_put16(ip + 2, full_tot);
    pkt_put16(ip + 10, 0);
    tmpl_check = csum_ip4_header(ip, ihl);
    memcpy(&tmpl_id, ip + 4, 2);
  }

  for (uint32_t i = first; i < first + count; i++) {
    uint8_t *o = hdrs + (size_t)(i - first) * slot;
    uint32_t plen = gso_seg_payload(p, i);
    const uint8_t *pay = payload0 + (size_t)i * p->mss;
    uint32_t l4len = (uint32_t)l4hl + plen;
    memcpy(o, f, h->hdr_len);
    uint8_t *ip = o + h->l3;
    if (!h->v6) {
      uint16_t tot = (uint16_t)(h->l4 - h->l3 + l4len), id_new;
      uint16_t check = tmpl_check, tot_tmpl_le, tot_le;
      pkt_put16(ip + 4, (uint16_t)(p->id0 + i));
      memcpy(&id_new, ip + 4, 2);
      check = csum_replace16(check, tmpl_id, id_new);
      pkt_put16(ip + 2, tot);
      if (tot != full_tot) {
        uint8_t a[2], b[2];
        pkt_put16(a, full_tot);
        pkt_put16(b, tot);
        memcpy(&tot_tmpl_le, a, 2);
        memcpy(&tot_le, b, 2);
        check = csum_replace16(check, tot_tmpl_le, tot_le);
      }
      csum_field_set(ip + 10, check);
    } else {
      pkt_put16(ip + 4, (uint16_t)(h->l4 - h->l3 - 40 + l4len));
    }
    uint8_t *l4 = o + h->l4;
    uint32_t sum = csum_add(p->pseudo, pseudo_len(l4len));
    if (tcp) {
      uint8_t fl = p->flags0;
      if (p->nseg > 1) {
        if (i > 0) fl &= (uint8_t)~TCP_FLAG_CWR;
        if (i + 1 < p->nseg) fl &= (uint8_t)~(TCP_FLAG_FIN | TCP_FLAG_PSH);
      }
      pkt_put32(l4 + 4, p->seq0 + i * (uint32_t)p->mss);
      l4[13] = fl;
      csum_field_set(l4 + 16, 0);
      sum = csum_add(sum, csum_partial(l4, l4hl, 0));
      sum = csum_add(sum, csum_partial(pay, plen, 0));
      csum_field_set(l4 + 16, csum_fold(sum));
    } else {
      pkt_put16(l4 + 4, (uint16_t)l4len);
      csum_field_set(l4 + 6, 0);
      sum = csum_add(sum, csum_partial(l4, l4hl, 0));
      sum = csum_add(sum, csum_partial(pay, plen, 0));
      uint16_t c = csum_fold(sum);
      csum_field_set(l4 + 6, c ? c : 0xffff);
    }
  }
}

unsigned tcp_segment(const struct vnet_hdr *vh, const uint8_t *frame, size_t len, uint8_t *out, size_t cap,
                     uint32_t *lens, unsigned max, int *err) {
  struct gso_plan p;
  enum gso_result r = gso_plan(vh, frame, len, &p);
  if (r != GSO_OK) {
    *err = (int)r;
    return 0;
  }
  if (p.nseg > max || (size_t)p.nseg * p.h.hdr_len + p.payload > cap) {
    *err = -1;
    return 0;
  }
  size_t off = 0;
  for (uint32_t i = 0; i < p.nseg; i++) {
    uint32_t plen = gso_seg_payload(&p, i);
    gso_segment(&p, frame, i, 1, out + off, p.h.hdr_len);
    memcpy(out + off + p.h.hdr_len, frame + p.h.hdr_len + (size_t)i * p.mss, plen);
    lens[i] = p.h.hdr_len + plen;
    off += lens[i];
  }
  *err = 0;
  return p.nseg;
}

bool csum_finish(const struct vnet_hdr *vh, uint8_t *frame, size_t len) {
  size_t start = vh->csum_start, at = start + vh->csum_offset;
  /* Never inside the Ethernet header: the MACs were checked and looked up already. */
  if (start < 14 || start >= len || at + 2 > len) return false;
  uint16_t c = csum_fold(csum_partial(frame + start, len - start, 0));
  csum_field_set(frame + at, c ? c : 0xffff);
  return true;
}

bool l4_csum_ok(const uint8_t *f, size_t len, const struct l34 *h) {
  size_t ip_len = ip_claimed_len(f, h);
  if (h->l3 + ip_len > len || h->l3 + ip_len < h->hdr_len) return false;
  uint32_t l4len = (uint32_t)(h->l3 + ip_len - h->l4);
  if (!h->v6 && h->proto == IPPROTO_UDP_ && csum_field_get(f + h->l4 + 6) == 0) return true;
  uint32_t sum = csum_add(pseudo_nolen(f, h, h->proto), pseudo_len(l4len));
  sum = csum_add(sum, csum_partial(f + h->l4, l4len, 0));
  return csum_fold(sum) == 0;
}

/* ---- coalescing ------------------------------------------------------------------- */

enum { ID_UNKNOWN = 0, ID_INCREMENT = 1, ID_FIXED = 2 };

static bool ip4_id_ok(const struct coalescer *c, const uint8_t *ip, const uint8_t *ip0, uint8_t *mode);

/*
 * A first segment that may start a coalesced train: parsed as `proto`, its IP length
 * agreeing with the frame, and (IPv4) no options and a good header checksum — as Linux
 * GRO, a header with options is never merged.
 */
static bool coalesce_first_ok(const uint8_t *f, size_t len, uint8_t proto, struct l34 *h) {
  if (!l34_parse(f, len, h) || h->proto != proto) return false;
  if (ip_claimed_len(f, h) != len - h->l3 || len <= h->hdr_len) return false;
  if (!h->v6) {
    if (h->l4 != h->l3 + 20) return false;
    if (csum_fold(csum_partial(f + h->l3, 20, 0)) != 0) return false;
  }
  return true;
}

/* Start a train at its first segment `f`; `next_seq`: the TCP sequence the next one must carry. */
static void coalesce_begin(struct coalescer *c, uint8_t *f, size_t len, const struct l34 *h, uint32_t next_seq) {
  c->first = f;
  c->first_len = len;
  c->h = *h;
  c->mss = (uint16_t)(len - h->hdr_len);
  c->next_seq = next_seq;
  c->next_id = h->v6 ? 0 : (uint16_t)(pkt_get16(f + h->l3 + 4) + 1);
  c->fixed_id = ID_UNKNOWN;
  c->closed = 0;
  c->last_flags = 0;
  c->total = (uint32_t)len;
  c->nseg = 1;
  c->iov[1].iov_base = f;
  c->iov[1].iov_len = len;
}

bool tcp_coalesce_start(struct coalescer *c, uint8_t *f, size_t len) {
  struct l34 h;
  if (!coalesce_first_ok(f, len, IPPROTO_TCP_, &h)) return false;
  uint8_t fl = f[h.l4 + 13];
  if (fl & (TCP_FLAG_SYN | TCP_FLAG_RST | TCP_FLAG_URG | TCP_FLAG_FIN | TCP_FLAG_PSH)) return false;
  size_t payload = len - h.hdr_len;
  if (payload > 0xffff) return false;
  coalesce_begin(c, f, len, &h, pkt_get32(f + h.l4 + 4) + (uint32_t)payload);
  return true;
}

bool tcp_coalesce_add(struct coalescer *c, const uint8_t *f, size_t len) {
  const struct l34 *h = &c->h;
  const uint8_t *f0 = c->first;
  uint8_t id_mode = c->fixed_id;
  if (c->closed || c->nseg >= GRO_MAX_SEGS || len <= h->hdr_len) return false;
  if (memcmp(f, f0, h->l3) != 0) return false; /* Ethernet (and VLAN) header */
  const uint8_t *ip = f + h->l3, *ip0 = f0 + h->l3;
  if (!h->v6) {
    if (ip[0] != ip0[0] || ip[1] != ip0[1] || pkt_get16(ip + 2) != len - h->l3) return false;
    if (pkt_get16(ip + 6) != pkt_get16(ip0 + 6) || ip[8] != ip0[8] || ip[9] != ip0[9]) return false;
    if (memcmp(ip + 12, ip0 + 12, 8) != 0) return false;
    if (!ip4_id_ok(c, ip, ip0, &id_mode)) return false;
    if (csum_fold(csum_partial(ip, 20, 0)) != 0) return false;
  } else {
    if (memcmp(ip, ip0, 4) != 0 || 40u + pkt_get16(ip + 4) != len - h->l3) return false;
    if (ip[6] != IPPROTO_TCP_ || ip[7] != ip0[7] || memcmp(ip + 8, ip0 + 8, 32) != 0) return false;
  }
  const uint8_t *th = f + h->l4, *th0 = f0 + h->l4;
  size_t thl = (size_t)(h->hdr_len - h->l4);
  uint8_t fl = th[13], fl0 = th0[13];
  bool ok = memcmp(th, th0, 4) == 0                                   /* ports */
            && pkt_get32(th + 4) == c->next_seq                           /* in order, no gap */
            && memcmp(th + 8, th0 + 8, 5) == 0                        /* ack, data offset */
            && !(fl & TCP_FLAG_CWR)                                   /* CWR only on the first */
            && (fl & (uint8_t)~(TCP_FLAG_PSH | TCP_FLAG_FIN)) == (fl0 & (uint8_t)~TCP_FLAG_CWR)
            && memcmp(th + 14, th0 + 14, 2) == 0                      /* window */
            && memcmp(th + 20, th0 + 20, thl - 20) == 0;              /* options */
  size_t payload = len - h->hdr_len;
  if (!ok || payload > c->mss || c->total + payload - h->l3 - (h->v6 ? 40 : 0) > 0xffff) return false;
  c->fixed_id = id_mode;
  c->iov[c->nseg + 1].iov_base = (void *)(f + h->hdr_len);
  c->iov[c->nseg + 1].iov_len = payload;
  c->nseg++;
  c->total += (uint32_t)payload;
  c->next_seq += (uint32_t)payload;
  c->next_id++;
  if (payload < c->mss || (fl & (TCP_FLAG_PSH | TCP_FLAG_FIN))) {
    c->closed = 1;
    c->last_flags = fl & (TCP_FLAG_PSH | TCP_FLAG_FIN);
  }
  return true;
}

/* The IPv4 id of the next segment (incrementing, or fixed with DF), decided by the second. */
static bool ip4_id_ok(const struct coalescer *c, const uint8_t *ip, const uint8_t *ip0, uint8_t *mode) {
  uint16_t id = pkt_get16(ip + 4);
  if (c->fixed_id == ID_UNKNOWN) {
    if (id == c->next_id) *mode = ID_INCREMENT;
    else if (id == pkt_get16(ip0 + 4) && (pkt_get16(ip0 + 6) & IP4_DF)) *mode = ID_FIXED;
    else return false;
    return true;
  }
  return c->fixed_id == ID_INCREMENT ? id == c->next_id : id == pkt_get16(ip0 + 4);
}

bool udp_coalesce_start(struct coalescer *c, uint8_t *f, size_t len) {
  struct l34 h;
  if (!coalesce_first_ok(f, len, IPPROTO_UDP_, &h)) return false;
  if (pkt_get16(f + h.l4 + 4) != len - h.l4) return false;
  coalesce_begin(c, f, len, &h, 0);
  return true;
}

bool udp_coalesce_add(struct coalescer *c, const uint8_t *f, size_t len) {
  const struct l34 *h = &c->h;
  const uint8_t *f0 = c->first;
  uint8_t id_mode = c->fixed_id;
  if (c->closed || c->nseg >= GRO_MAX_SEGS || len <= h->hdr_len) return false;
  if (memcmp(f, f0, h->l3) != 0) return false;
  const uint8_t *ip = f + h->l3, *ip0 = f0 + h->l3;
  if (!h->v6) {
    if (ip[0] != ip0[0] || ip[1] != ip0[1] || pkt_get16(ip + 2) != len - h->l3) return false;
    if (pkt_get16(ip + 6) != pkt_get16(ip0 + 6) || ip[8] != ip0[8] || ip[9] != ip0[9]) return false;
    if (memcmp(ip + 12, ip0 + 12, 8) != 0 || !ip4_id_ok(c, ip, ip0, &id_mode)) return false;
    if (csum_fold(csum_partial(ip, 20, 0)) != 0) return false;
  } else {
    if (memcmp(ip, ip0, 4) != 0 || 40u + pkt_get16(ip + 4) != len - h->l3) return false;
    if (ip[6] != IPPROTO_UDP_ || ip[7] != ip0[7] || memcmp(ip + 8, ip0 + 8, 32) != 0) return false;
  }
  const uint8_t *uh = f + h->l4;
  size_t payload = len - h->hdr_len;
  if (memcmp(uh, f0 + h->l4, 4) != 0 || pkt_get16(uh + 4) != len - h->l4) return false;
  if (payload > c->mss || c->total + payload - h->l3 - (h->v6 ? 40 : 0) > 0xffff) return false;
  c->fixed_id = id_mode;
  c->iov[c->nseg + 1].iov_base = (void *)(f + h->hdr_len);
  c->iov[c->nseg + 1].iov_len = payload;
  c->nseg++;
  c->total += (uint32_t)payload;
  c->next_id++;
  if (payload < c->mss) c->closed = 1;
  return true;
}

bool coalesce_add(struct coalescer *c, const uint8_t *frame, size_t len) {
  return c->h.proto == IPPROTO_TCP_ ? tcp_coalesce_add(c, frame, len) : udp_coalesce_add(c, frame, len);
}

unsigned coalesce_finish(struct coalescer *c, struct vnet_hdr *vh) {
  c->iov[0].iov_base = vh;
  c->iov[0].iov_len = VNET_HDR_LEN;
  memset(vh, 0, sizeof *vh);
  if (c->nseg < 2) return 2;
  const struct l34 *h = &c->h;
  uint8_t *f = c->first;
  memcpy(c->saved, f, h->hdr_len);
  uint8_t *ip = f + h->l3, *l4 = f + h->l4;
  uint32_t l4len = c->total - h->l4;
  if (!h->v6) {
    pkt_put16(ip + 2, (uint16_t)(c->total - h->l3));
    pkt_put16(ip + 10, 0);
    csum_field_set(ip + 10, csum_ip4_header(ip, 20));
  } else {
    pkt_put16(ip + 4, (uint16_t)(c->total - h->l3 - 40));
  }
  uint32_t sum = csum_add(pseudo_nolen(f, h, h->proto), pseudo_len(l4len));
  vh->flags = VNET_F_NEEDS_CSUM;
  vh->hdr_len = h->hdr_len;
  vh->gso_size = c->mss;
  vh->csum_start = h->l4;
  if (h->proto == IPPROTO_TCP_) {
    l4[13] |= c->last_flags;
    csum_field_set(l4 + 16, csum_fold16(sum));
    vh->gso_type = (uint8_t)((h->v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4) | (l4[13] & TCP_FLAG_CWR ? VNET_GSO_ECN : 0));
    vh->csum_offset = 16;
  } else {
    pkt_put16(l4 + 4, (uint16_t)l4len);
    csum_field_set(l4 + 6, csum_fold16(sum));
    vh->gso_type = VNET_GSO_UDP_L4;
    vh->csum_offset = 6;
  }
  return c->nseg + 1;
}

void coalesce_unpatch(struct coalescer *c) {
  if (c->nseg >= 2) memcpy(c->first, c->saved, c->h.hdr_len);
}
