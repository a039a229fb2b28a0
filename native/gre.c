#include "gre.h"

#include "packet.h"

static const char *const result_names[GRE_POP_RESULTS] = {
    [GRE_OK] = "ok",
    [GRE_TRUNCATED] = "truncated",
    [GRE_BAD_VERSION] = "bad_version",
    [GRE_RESERVED] = "reserved",
    [GRE_BAD_PROTO] = "bad_proto",
    [GRE_BAD_CHECKSUM] = "bad_checksum",
    [GRE_SEQUENCED] = "sequenced",
    [GRE_NO_KEY] = "no_key",
    [GRE_NVGRE_FLAGS] = "nvgre_flags",
    [GRE_NVGRE_VLAN] = "nvgre_vlan",
};

const char *gre_pop_result_name(enum gre_pop_result r) {
  return (unsigned)r < GRE_POP_RESULTS ? result_names[r] : "?";
}


uint16_t gre_checksum(const uint8_t *p, size_t len) {
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 1 < len; i += 2) sum += pkt_get16(p + i);
  if (i < len) sum += (uint32_t)p[i] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

void gre_hdr_build(struct gre_key_hdr *h, uint32_t key) {
  h->flags_ver[0] = GRE_F_KEY >> 8;
  h->flags_ver[1] = 0;
  h->proto[0] = GRE_PROTO_TEB >> 8;
  h->proto[1] = GRE_PROTO_TEB & 0xff;
  pkt_put32(h->key, key);
}

void nvgre_hdr_build(struct gre_key_hdr *h, uint32_t vsid) { gre_hdr_build(h, (vsid & NVGRE_VSID_MAX) << 8); }

/* The first word: length, version, bits 1/4/5. */
static enum gre_pop_result check_word0(const uint8_t *pkt, size_t len, struct gre_info *info) {
  if (len < GRE_HLEN_BASE) return GRE_TRUNCATED;
  uint16_t w0 = pkt_get16(pkt);
  info->flags = (uint16_t)(w0 & ~GRE_VERSION_MASK);
  info->proto = pkt_get16(pkt + 2);
  info->hlen = GRE_HLEN_BASE + (w0 & GRE_F_CSUM ? 4 : 0) + (w0 & GRE_F_KEY ? 4 : 0) + (w0 & GRE_F_SEQ ? 4 : 0);
  if ((w0 & GRE_VERSION_MASK) != 0) return GRE_BAD_VERSION;
  if (w0 & GRE_F_MUST_BE_ZERO) return GRE_RESERVED;
  return GRE_OK;
}

/* Everything after the first word's checks. */
static enum gre_pop_result check_rest(const uint8_t *pkt, size_t len, struct gre_info *info) {
  uint16_t f = info->flags;
  if (len < info->hlen) return GRE_TRUNCATED;
  size_t off = GRE_HLEN_BASE + (f & GRE_F_CSUM ? 4 : 0);
  if (f & GRE_F_KEY) {
    info->key = pkt_get32(pkt + off);
    off += 4;
  }
  if (f & GRE_F_SEQ) info->seq = pkt_get32(pkt + off);
  if (info->proto != GRE_PROTO_TEB) return GRE_BAD_PROTO;
  /* Summing the header with its own checksum field in gives 0 (complemented) when right. */
  if ((f & GRE_F_CSUM) && gre_checksum(pkt, len) != 0) return GRE_BAD_CHECKSUM;
  if (f & GRE_F_SEQ) return GRE_SEQUENCED;
  if (!(f & GRE_F_KEY)) return GRE_NO_KEY;
  return GRE_OK;
}

enum gre_pop_result gre_pop(const uint8_t *pkt, size_t len, struct gre_info *info) {
  memset(info, 0, sizeof *info);
  enum gre_pop_result r = check_word0(pkt, len, info);
  return r != GRE_OK ? r : check_rest(pkt, len, info);
}

enum gre_pop_result nvgre_pop(const uint8_t *pkt, size_t len, struct gre_info *info, uint32_t *vsid,
                              uint8_t *flow_id) {
  memset(info, 0, sizeof *info);
  enum gre_pop_result r = check_word0(pkt, len, info);
  if (r != GRE_OK) return r;
  if ((info->flags & (GRE_F_CSUM | GRE_F_SEQ | GRE_F_KEY)) != GRE_F_KEY) return GRE_NVGRE_FLAGS;
  if ((r = check_rest(pkt, len, info)) != GRE_OK) return r;
  *vsid = info->key >> 8;
  *flow_id = (uint8_t)info->key;
  const uint8_t *frame = pkt + info->hlen;
  size_t flen = len - info->hlen;
  if (flen >= 14) {
    uint16_t type = pkt_get16(frame + 12);
    if (type == 0x8100 || type == 0x88A8) return GRE_NVGRE_VLAN;
  }
  return GRE_OK;
}
