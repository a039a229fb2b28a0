// TAP devices, attached interfaces and plain fds: tapOpen, attachOpen, attachIfindex, fdClose
// (native/tap.c, native/attach.c).
#include "addon.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include "attach.h"
#include "tap.h"

namespace vtepd {
namespace {

// An options object's interface name (1..15 bytes) and optional netns; false after throwing.
bool NameAndNetns(Args &a, Napi::Object o, std::string *name, std::string *netns, const char **cnetns) {
  Napi::Value v;
  if (!a.Prop(o, "name", &v) || !a.String(v, "name", name)) return false;
  if (name->empty() || name->size() >= IFNAMSIZ || name->find('\0') != std::string::npos)
    return a.Fail(EINVAL, "name '" + *name + "' must be 1..15 bytes");
  if (!a.Prop(o, "netns", &v)) return false;
  if (!v.IsUndefined() && !v.IsNull()) {
    if (!a.String(v, "netns", netns)) return false;
    *cnetns = netns->c_str();
  }
  return true;
}

Napi::Value TapOpen(const Napi::CallbackInfo &info) {
  Args a(info, "tapOpen");
  Napi::Object o;
  Napi::Value v;
  std::string name, netns, mac, ipv4;
  struct tap_config cfg = {};
  int64_t n = 0;
  if (!a.Object(0, "options", &o)) return {};

  if (!NameAndNetns(a, o, &name, &netns, &cfg.netns)) return {};
  cfg.name = name.c_str();

  if (!a.Prop(o, "mtu", &v) || !a.Int(v, "mtu", 0, 0x7fffffff, &n)) return {};
  cfg.mtu = (int)n; // the kernel judges the range (68..65535 for a TAP)

  if (!a.Prop(o, "mac", &v)) return {};
  if (!v.IsUndefined() && !v.IsNull()) {
    if (!a.String(v, "mac", &mac)) return {};
    if (!ParseMac(mac, cfg.mac))
      return a.Fail(EINVAL, "mac '" + mac + "' is not a MAC address like 02:00:00:00:01:01"), Napi::Value();
    cfg.has_mac = true;
  }

  if (!a.Prop(o, "ipv4", &v)) return {};
  if (!v.IsUndefined() && !v.IsNull()) {
    if (!v.IsObject()) return a.Fail(EINVAL, "ipv4 must be an object"), Napi::Value();
    Napi::Object ip = v.As<Napi::Object>();
    if (!a.Prop(ip, "address", &v) || !a.String(v, "ipv4.address", &ipv4)) return {};
    if (inet_pton(AF_INET, ipv4.c_str(), &cfg.ipv4) != 1)
      return a.Fail(EINVAL, "ipv4.address '" + ipv4 + "' is not an IPv4 address"), Napi::Value();
    if (!a.Prop(ip, "prefixLength", &v) || !a.Int(v, "ipv4.prefixLength", 0, 32, &n)) return {};
    cfg.prefix_len = (int)n;
    cfg.has_ipv4 = true;
  }

  if (!a.Prop(o, "up", &v)) return {};
  if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, "up must be a boolean"), Napi::Value();
  cfg.up = v.IsUndefined() || v.As<Napi::Boolean>().Value();

  if (!a.Prop(o, "offloads", &v)) return {};
  if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, "offloads must be a boolean"), Napi::Value();
  cfg.offloads = v.IsUndefined() || v.As<Napi::Boolean>().Value();

  if (!a.Prop(o, "queues", &v)) return {};
  if (!v.IsUndefined() && !a.Int(v, "queues", 1, TAP_MAX_QUEUES, &n)) return {};
  cfg.queues = v.IsUndefined() ? 1 : (unsigned)n;

  struct tap_result r;
  int err = tap_open(&cfg, &r);
  if (err) return a.Fail(err, std::string(r.step) + " on " + name + ": " + ErrText(err)), Napi::Value();

  Napi::Object out = Napi::Object::New(a.env);
  out.Set("fd", r.fd);
  out.Set("name", r.name);
  out.Set("ifindex", r.ifindex);
  out.Set("mac", MacString(r.mac));
  out.Set("vnetHdr", r.vnet_hdr);
  Napi::Array offl = Napi::Array::New(a.env);
  static const struct { unsigned bit; const char *name; } kOffloads[] = {
      {TAP_F_CSUM, "csum"}, {TAP_F_TSO4, "tso4"}, {TAP_F_TSO6, "tso6"},
      {TAP_F_TSO_ECN, "tso_ecn"}, {TAP_F_USO4, "uso4"}, {TAP_F_USO6, "uso6"}};
  for (const auto &f : kOffloads)
    if (r.offloads & f.bit) offl.Set(offl.Length(), f.name);
  out.Set("offloads", offl);
  if (r.gso_max_segs) out.Set("gsoMaxSegs", r.gso_max_segs);
  Napi::Array qfds = Napi::Array::New(a.env);
  for (unsigned q = 1; q < r.nqueues; q++) qfds.Set(q - 1, r.queue_fds[q]);
  out.Set("queueFds", qfds);
  return out;
}

Napi::Value AttachOpen(const Napi::CallbackInfo &info) {
  Args a(info, "attachOpen");
  Napi::Object o;
  Napi::Value v;
  std::string name, netns;
  struct attach_config cfg = {};
  if (!a.Object(0, "options", &o)) return {};
  if (!NameAndNetns(a, o, &name, &netns, &cfg.netns)) return {};
  cfg.name = name.c_str();
  if (!a.Prop(o, "up", &v)) return {};
  if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, "up must be a boolean"), Napi::Value();
  cfg.up = v.IsUndefined() || v.As<Napi::Boolean>().Value();
  if (!a.Prop(o, "ipv6Off", &v)) return {};
  if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, "ipv6Off must be a boolean"), Napi::Value();
  cfg.ipv6_off = !v.IsUndefined() && v.As<Napi::Boolean>().Value();

  struct attach_result r;
  int err = attach_open(&cfg, &r);
  if (err) return a.Fail(err, std::string(r.step) + " on " + name + ": " + ErrText(err)), Napi::Value();
  Napi::Object out = Napi::Object::New(a.env);
  out.Set("fd", r.fd);
  out.Set("name", name);
  out.Set("ifindex", r.ifindex);
  out.Set("mac", MacString(r.mac));
  out.Set("mtu", r.mtu);
  out.Set("broughtUp", r.was_down);
  out.Set("ipv6TurnedOff", r.ipv6_was_on);
  return out;
}

Napi::Value AttachIfindex(const Napi::CallbackInfo &info) {
  Args a(info, "attachIfindex");
  int fd;
  if (!a.Fd(0, &fd)) return {};
  int r = attach_bound_ifindex(fd);
  if (r < -1) return a.Fail(-r, "fd " + std::to_string(fd) + ": " + ErrText(-r)), Napi::Value();
  return Napi::Number::New(a.env, r);
}

Napi::Value FdClose(const Napi::CallbackInfo &info) {
  Args a(info, "fdClose");
  int fd;
  if (!a.Fd(0, &fd)) return {};
  if (close(fd) < 0 && errno != EINTR) { // after EINTR the fd is gone on Linux
    int e = errno;
    a.Fail(e, "fd " + std::to_string(fd) + ": " + ErrText(e));
  }
  return a.env.Undefined();
}

} // namespace

void TapExports(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "tapOpen", TapOpen);
  Export(env, exports, "attachOpen", AttachOpen);
  Export(env, exports, "attachIfindex", AttachIfindex);
  Export(env, exports, "fdClose", FdClose);
}

} // namespace vtepd
