// The test addon (build/Release/vtepd_test.node), never loaded by the product: socketpair
// ports, segmenting and coalescing (native/gso.c), event and idle records encoded by the
// data path's own encoders (dp_event_encode, fdb_idle_dump), and the VXLAN parser. Loaded by tests through
// test/support/test-addon.ts. fds are process-wide: a socketpair made here is handed to the
// product addon's dpPortSet as it is.
#include "addon.h"

#include "fastpath.h"
#include "gso.h"
#include "testutil.h"
#include "vxlan.h"

namespace {

using namespace vtepd;

Napi::Value TestSocketPair(const Napi::CallbackInfo &info) {
  Args a(info, "testSocketPair");
  int fds[2];
  int err = test_socketpair(fds);
  if (err) return a.Fail(err, ErrText(err)), Napi::Value();
  Napi::Array r = Napi::Array::New(a.env, 2);
  r.Set(0u, fds[0]);
  r.Set(1u, fds[1]);
  return r;
}

Napi::Value TestRead(const Napi::CallbackInfo &info) {
  Args a(info, "testRead");
  int fd;
  int64_t timeout = 0;
  if (!a.Fd(0, &fd) || !a.Int(info[1], "timeoutMs", -1, 0x7fffffff, &timeout)) return {};
  static std::vector<uint8_t> buf(TEST_READ_MAX); // JS thread only
  size_t n = 0;
  int err = test_read(fd, (int)timeout, buf.data(), buf.size(), &n);
  if (err == ETIMEDOUT) return a.env.Null();
  if (err) return a.Fail(err, "fd " + std::to_string(fd) + ": " + ErrText(err)), Napi::Value();
  return Napi::Buffer<uint8_t>::Copy(a.env, buf.data(), n);
}

Napi::Value TestWrite(const Napi::CallbackInfo &info) {
  Args a(info, "testWrite");
  int fd = -1;
  const uint8_t *data = nullptr;
  size_t len = 0;
  if (!a.Fd(0, &fd) || !a.Bytes(info[1], "frame", &data, &len)) return {};
  int err = test_write(fd, data, len);
  if (err) a.Fail(err, "fd " + std::to_string(fd) + ": " + ErrText(err));
  return a.env.Undefined();
}

// testSegment(vnet header + super-frame) -> the segments (native/gso.c tcp_segment)
Napi::Value TestSegment(const Napi::CallbackInfo &info) {
  Args a(info, "testSegment");
  const uint8_t *data = nullptr;
  size_t len = 0;
  if (!a.Bytes(info[0], "frame", &data, &len)) return {};
  if (len < VNET_HDR_LEN) return a.Fail(EINVAL, "frame must start with a 10-byte virtio_net_hdr"), Napi::Value();
  struct vnet_hdr vh;
  memcpy(&vh, data, VNET_HDR_LEN);
  static std::vector<uint8_t> out(4u << 20); // JS thread only
  static std::vector<uint32_t> lens(65536);
  int err = 0;
  unsigned n = tcp_segment(&vh, data + VNET_HDR_LEN, len - VNET_HDR_LEN, out.data(), out.size(), lens.data(),
                           (unsigned)lens.size(), &err);
  if (n == 0) {
    static const char *const why[] = {"ok", "bad header", "unsupported gso_type or layout"};
    return a.Fail(EINVAL, err < 0 ? "too many segments" : why[err]), Napi::Value();
  }
  Napi::Array r = Napi::Array::New(a.env, n);
  size_t off = 0;
  for (unsigned i = 0; i < n; i++) {
    r.Set(i, Napi::Buffer<uint8_t>::Copy(a.env, out.data() + off, lens[i]));
    off += lens[i];
  }
  return r;
}

// testCoalesce(frames) -> the frames the decap path would write, each behind its
// virtio_net_hdr (native/gso.c tcp_coalesce_*): a new super-frame starts where one ends.
Napi::Value TestCoalesce(const Napi::CallbackInfo &info) {
  Args a(info, "testCoalesce");
  if (!info[0].IsArray()) return a.Fail(EINVAL, "frames must be an array of Buffers"), Napi::Value();
  Napi::Array in = info[0].As<Napi::Array>();
  std::vector<std::vector<uint8_t>> frames(in.Length());
  for (uint32_t i = 0; i < in.Length(); i++) {
    const uint8_t *d = nullptr;
    size_t n = 0;
    Napi::Value v;
    if (!a.Prop(in, std::to_string(i).c_str(), &v) || !a.Bytes(v, "frames[]", &d, &n)) return {};
    frames[i].assign(d, d + n);
  }
  Napi::Array out = Napi::Array::New(a.env);
  struct coalescer c;
  bool active = false;
  auto flush = [&]() {
    struct vnet_hdr vh;
    unsigned niov = coalesce_finish(&c, &vh);
    std::vector<uint8_t> buf;
    for (unsigned k = 0; k < niov; k++) {
      const uint8_t *p = static_cast<const uint8_t *>(c.iov[k].iov_base);
      buf.insert(buf.end(), p, p + c.iov[k].iov_len);
    }
    out.Set(out.Length(), Napi::Buffer<uint8_t>::Copy(a.env, buf.data(), buf.size()));
    active = false;
  };
  for (auto &f : frames) {
    if (active && coalesce_add(&c, f.data(), f.size())) continue;
    if (active) flush();
    if (tcp_coalesce_start(&c, f.data(), f.size()) || udp_coalesce_start(&c, f.data(), f.size())) {
      active = true;
    } else {
      std::vector<uint8_t> buf(VNET_HDR_LEN, 0);
      buf.insert(buf.end(), f.begin(), f.end());
      out.Set(out.Length(), Napi::Buffer<uint8_t>::Copy(a.env, buf.data(), buf.size()));
    }
  }
  if (active) flush();
  return out;
}

// encodeEvent({ type, inKind, tenantId, inId, outId?, family?, encap?, outerAddr?, outerPort? }, frame)
// -> one record as the fast path queues it (dp_event_encode).
Napi::Value EncodeEvent(const Napi::CallbackInfo &info) {
  Args a(info, "encodeEvent");
  Napi::Object o;
  Napi::Value v;
  const uint8_t *frame = nullptr, *addr = nullptr;
  size_t len = 0, alen = 0;
  struct dp_event ev = {};
  if (!a.Object(0, "event", &o) || !a.Bytes(info[1], "frame", &frame, &len)) return {};
  static const struct { const char *key; int64_t max; } kFields[] = {
      {"type", 255}, {"inKind", 255}, {"family", 255}, {"encap", 255}, {"outerPort", 65535},
      {"tenantId", 0xffffffff}, {"inId", 0xffffffff}, {"outId", 0xffffffff}};
  int64_t n[8] = {};
  for (int i = 0; i < 8; i++) {
    if (!a.Prop(o, kFields[i].key, &v)) return {};
    if (!v.IsUndefined() && !a.Int(v, kFields[i].key, 0, kFields[i].max, &n[i])) return {};
  }
  ev.type = (uint8_t)n[0];
  ev.in_kind = (uint8_t)n[1];
  ev.family = (uint8_t)n[2];
  ev.encap = (uint8_t)n[3];
  ev.outer_port = (uint16_t)n[4];
  ev.tenant_id = (uint32_t)n[5];
  ev.in_id = (uint32_t)n[6];
  ev.out_id = (uint32_t)n[7];
  if (!a.Prop(o, "outerAddr", &v)) return {};
  if (!v.IsUndefined()) {
    if (!a.Bytes(v, "outerAddr", &addr, &alen)) return {};
    if (alen != 16) return a.Fail(EINVAL, "outerAddr must be 16 bytes"), Napi::Value();
    memcpy(ev.outer_addr, addr, 16);
  }
  if ((ev.type == DP_EV_LEARN || ev.type == DP_EV_MISS || ev.type == DP_EV_TOO_BIG) && len < 12)
    return a.Fail(EINVAL, "frame must hold the MAC addresses"), Napi::Value();
  std::vector<uint8_t> rec(dp_event_record_len(ev.type, len));
  dp_event_encode(rec.data(), &ev, frame, len);
  return Napi::Buffer<uint8_t>::Copy(a.env, rec.data(), rec.size());
}

// encodeIdle([{ tenantId, mac, idleMs }]) -> the dpFdbIdle records of an FDB holding those
// entries (fdb_idle_dump), in the FDB's order.
Napi::Value EncodeIdle(const Napi::CallbackInfo &info) {
  Args a(info, "encodeIdle");
  if (!info[0].IsArray()) return a.Fail(EINVAL, "entries must be an array"), Napi::Value();
  Napi::Array in = info[0].As<Napi::Array>();
  std::vector<struct test_idle> entries(in.Length());
  for (uint32_t i = 0; i < in.Length(); i++) {
    Napi::Value e, v;
    int64_t tenant = 0, idle = 0;
    if (!a.Prop(in, std::to_string(i).c_str(), &e) || !e.IsObject())
      return a.Fail(EINVAL, "entries[] must be objects"), Napi::Value();
    Napi::Object o = e.As<Napi::Object>();
    const uint8_t *mac = nullptr;
    size_t n = 0;
    if (!a.Prop(o, "tenantId", &v) || !a.Int(v, "tenantId", 1, 0xffff, &tenant) || !a.Prop(o, "idleMs", &v) ||
        !a.Int(v, "idleMs", 0, 0x7fffffff, &idle) || !a.Prop(o, "mac", &v) || !a.Bytes(v, "mac", &mac, &n))
      return {};
    if (n != 6) return a.Fail(EINVAL, "mac must be 6 bytes"), Napi::Value();
    entries[i].tenant_id = (uint32_t)tenant;
    memcpy(entries[i].mac, mac, 6);
    entries[i].idle_ms = (uint32_t)idle;
  }
  std::vector<uint8_t> out(entries.size() * TEST_IDLE_RECORD + 1);
  size_t len = 0;
  int err = test_idle_records(entries.data(), (unsigned)entries.size(), out.data(), &len);
  if (err) return a.Fail(err, ErrText(err)), Napi::Value();
  return Napi::Buffer<uint8_t>::Copy(a.env, out.data(), len);
}

// vxlanPop(packet) -> { result: 'ok' | 'truncated' | 'bad_flags', vni? }: the module's own
// parser (native/vxlan.c), the one the decap path calls, over a UDP payload.
Napi::Value VxlanPop(const Napi::CallbackInfo &info) {
  Args a(info, "vxlanPop");
  const uint8_t *p = nullptr;
  size_t len = 0;
  if (!a.Bytes(info[0], "packet", &p, &len)) return {};
  uint32_t vni = 0;
  enum vxlan_pop_result r = vxlan_pop(p, len, &vni);
  Napi::Object out = Napi::Object::New(a.env);
  out.Set("result", r == VXLAN_OK ? "ok" : r == VXLAN_TRUNCATED ? "truncated" : "bad_flags");
  if (r == VXLAN_OK) out.Set("vni", vni);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "testSocketPair", TestSocketPair);
  Export(env, exports, "testRead", TestRead);
  Export(env, exports, "testWrite", TestWrite);
  Export(env, exports, "testSegment", TestSegment);
  Export(env, exports, "testCoalesce", TestCoalesce);
  Export(env, exports, "encodeEvent", EncodeEvent);
  Export(env, exports, "encodeIdle", EncodeIdle);
  Export(env, exports, "vxlanPop", VxlanPop);
  return exports;
}

} // namespace

NODE_API_MODULE(vtepd_test, Init)
