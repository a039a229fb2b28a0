// N-API glue only: argument checks, errno -> Error with a string `code`, handle lifetime,
// and delivery of event records to JS. The surface is declared in src/native/addon.ts.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "fastpath.h"
#include "gso.h"
#include "tap.h"
#include "testutil.h"
#include "udp.h"

namespace {

const char *ErrnoName(int e) {
  switch (e) {
#define E(x) \
  case x:    \
    return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES)
    E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY)
    E(ENOSPC) E(EPIPE) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ELOOP) E(EOVERFLOW) E(EBADFD) E(ENOTSOCK)
    E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT) E(EPROTONOSUPPORT) E(EOPNOTSUPP)
    E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ECONNRESET) E(ENOBUFS)
    E(EISCONN) E(ENOTCONN) E(ESHUTDOWN) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTUNREACH) E(EALREADY)
#undef E
  }
  return "EUNKNOWN";
}

std::string ErrText(int e) {
  char buf[128];
  return strerror_r(e, buf, sizeof buf); // GNU variant: returns the message
}

void Throw(Napi::Env env, int err, const std::string &msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.ThrowAsJavaScriptException();
}

std::string MacString(const uint8_t *m) {
  char s[18];
  snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return s;
}

bool ParseMac(const std::string &s, uint8_t out[6]) {
  if (s.size() != 17) return false;
  for (int i = 0; i < 6; i++) {
    char hex[3] = {s[i * 3], s[i * 3 + 1], 0};
    if (!isxdigit((unsigned char)hex[0]) || !isxdigit((unsigned char)hex[1])) return false;
    if (i < 5 && s[i * 3 + 2] != ':') return false;
    out[i] = (uint8_t)strtoul(hex, nullptr, 16);
  }
  return true;
}

// Argument access for one call: every failure throws "<call>: <what>" and returns false.
struct Args {
  const Napi::CallbackInfo &info;
  Napi::Env env;
  const char *call;

  Args(const Napi::CallbackInfo &i, const char *c) : info(i), env(i.Env()), call(c) {}

  bool Fail(int err, const std::string &msg) {
    Throw(env, err, std::string(call) + ": " + msg);
    return false;
  }

  bool Int(Napi::Value v, const char *name, int64_t lo, int64_t hi, int64_t *out, int range_err = EINVAL) {
    if (!v.IsNumber()) return Fail(EINVAL, std::string(name) + " must be an integer");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) > 9007199254740991.0)
      return Fail(EINVAL, std::string(name) + " must be an integer");
    if (d < (double)lo || d > (double)hi)
      return Fail(range_err, std::string(name) + " " + std::to_string((int64_t)d) + " is out of range " +
                                 std::to_string(lo) + ".." + std::to_string(hi));
    *out = (int64_t)d;
    return true;
  }

  // Identifiers (tenantId, portId, vtepId, vni): out of range is ERANGE.
  bool Id(size_t i, const char *name, uint32_t max, uint32_t *out) {
    int64_t v = 0;
    if (!Int(info[i], name, 1, max - 1, &v, ERANGE)) return false;
    *out = (uint32_t)v;
    return true;
  }

  // An array of fds, lo..hi of them (`what` says what they are, for the error).
  bool FdArray(Napi::Value v, const char *name, uint32_t lo, uint32_t hi, const char *what, std::vector<int> *out) {
    if (!v.IsArray()) return Fail(EINVAL, std::string(name) + " must be an array of fds");
    Napi::Array arr = v.As<Napi::Array>();
    if (arr.Length() < lo || arr.Length() > hi)
      return Fail(EINVAL, std::string(name) + " must hold " + std::to_string(lo) + ".." + std::to_string(hi) + " fds (" +
                              what + "), got " + std::to_string(arr.Length()));
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value e;
      int64_t fd = 0;
      if (!Prop(arr, std::to_string(i).c_str(), &e) ||
          !Int(e, (std::string(name) + "[" + std::to_string(i) + "]").c_str(), 0, 0x7fffffff, &fd))
        return false;
      out->push_back((int)fd);
    }
    return true;
  }

  bool Fd(size_t i, int *out) {
    int64_t v = 0;
    if (!Int(info[i], "fd", 0, 0x7fffffff, &v)) return false;
    *out = (int)v;
    return true;
  }

  bool Bytes(Napi::Value v, const char *name, const uint8_t **data, size_t *len) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      return Fail(EINVAL, std::string(name) + " must be a Buffer");
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    *data = a.Data();
    *len = a.ElementLength();
    return true;
  }

  bool Mac(size_t i, uint8_t mac[6]) {
    const uint8_t *d = nullptr;
    size_t n = 0;
    if (!Bytes(info[i], "mac", &d, &n)) return false;
    if (n != 6) return Fail(EINVAL, "mac must be 6 bytes, got " + std::to_string(n));
    memcpy(mac, d, 6);
    return true;
  }

  bool Ids(size_t i, const char *name, uint32_t max, const uint32_t **data, size_t *len) {
    Napi::Value v = info[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      return Fail(EINVAL, std::string(name) + " must be a Uint32Array");
    Napi::Uint32Array a = v.As<Napi::Uint32Array>();
    for (size_t k = 0; k < a.ElementLength(); k++) {
      if (a[k] == 0 || a[k] >= max)
        return Fail(ERANGE, std::string(name) + "[" + std::to_string(k) + "] = " + std::to_string(a[k]) +
                                " is out of range 1.." + std::to_string(max - 1));
    }
    *data = a.Data();
    *len = a.ElementLength();
    return true;
  }

  bool Object(size_t i, const char *name, Napi::Object *out) {
    if (!info[i].IsObject()) return Fail(EINVAL, std::string(name) + " must be an object");
    *out = info[i].As<Napi::Object>();
    return true;
  }

  // A property; false only if reading it threw (a getter), which stays pending.
  bool Prop(Napi::Object o, const char *key, Napi::Value *out) {
    *out = o.Get(key);
    return !env.IsExceptionPending();
  }

  bool String(Napi::Value v, const char *name, std::string *out) {
    if (!v.IsString()) return Fail(EINVAL, std::string(name) + " must be a string");
    *out = v.As<Napi::String>().Utf8Value();
    return true;
  }
};

// ---- data-path handles --------------------------------------------------------------

struct DpBox {
  struct dp *dp = nullptr;
  napi_env env = nullptr;
  Napi::FunctionReference onEvents;
  napi_async_context actx = nullptr;
  uv_async_t *async = nullptr;
  bool inCallback = false;
  bool hookDone = false;
};

// Handles this addon made: an External from elsewhere is refused without dereferencing it.
std::mutex gLiveMu;
std::unordered_set<DpBox *> gLive;

void Notify(void *arg) { uv_async_send(static_cast<uv_async_t *>(arg)); }

void StopBox(DpBox *b) {
  if (b->dp) dp_stop(b->dp); // joins the threads: nothing calls Notify after this
  if (b->async) {
    uv_close(reinterpret_cast<uv_handle_t *>(b->async),
             [](uv_handle_t *h) { delete reinterpret_cast<uv_async_t *>(h); });
    b->async = nullptr;
  }
  b->onEvents.Reset();
  if (b->actx && !b->inCallback) { // else OnEvents destroys it once the callback returns
    napi_async_destroy(b->env, b->actx);
    b->actx = nullptr;
  }
}

// JS thread, once per uv_async wake-up (sends coalesce): all queued records, one Buffer.
// Raw N-API on purpose: during environment teardown Node still runs pending handles
// (CleanupHandles, before the cleanup hooks) but JS can no longer run; then the records
// are dropped instead of aborting as node-addon-api would on a failed call.
void OnEvents(uv_async_t *h) {
  DpBox *b = static_cast<DpBox *>(h->data);
  if (!b->dp || b->onEvents.IsEmpty()) return;
  const uint8_t *data;
  size_t len;
  dp_events_take(b->dp, &data, &len);
  if (len == 0) return;

  napi_env env = b->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value buf, global, fn, result;
  void *copy;
  bool pending = false;
  if (napi_create_buffer_copy(env, len, data, &copy, &buf) == napi_ok && napi_get_global(env, &global) == napi_ok &&
      napi_get_reference_value(env, b->onEvents, &fn) == napi_ok) {
    b->inCallback = true;
    // make_callback (not call_function): runs nextTick/microtasks after, like any I/O callback.
    napi_status st = napi_make_callback(env, b->actx, global, fn, 1, &buf, &result);
    b->inCallback = false;
    if (st != napi_ok && napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      // Nothing is caught here: a throwing onEvents is an uncaught exception, as in any callback.
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  } else if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  napi_close_handle_scope(env, scope);
  if (!b->async && b->actx) { // dpStop ran inside the callback
    napi_async_destroy(env, b->actx);
    b->actx = nullptr;
  }
}

void EnvCleanup(void *arg) {
  DpBox *b = static_cast<DpBox *>(arg);
  b->hookDone = true;
  StopBox(b);
}

void FinalizeDp(Napi::Env env, DpBox *b) {
  if (!b->hookDone) napi_remove_env_cleanup_hook(env, EnvCleanup, b);
  StopBox(b);
  dp_destroy(b->dp);
  {
    std::lock_guard<std::mutex> lock(gLiveMu);
    gLive.erase(b);
  }
  delete b;
}

DpBox *GetDp(Args &a) {
  Napi::Value v = a.info[0];
  if (v.IsExternal()) {
    DpBox *b = v.As<Napi::External<DpBox>>().Data();
    std::lock_guard<std::mutex> lock(gLiveMu);
    if (gLive.count(b)) return b;
  }
  a.Fail(EINVAL, "dp is not a data-path handle from dpCreate");
  return nullptr;
}

// C control functions return 0 or errno and leave the reason in dp_last_error().
Napi::Value Check(Args &a, DpBox *b, int err) {
  if (err) a.Fail(err, dp_last_error(b->dp));
  return a.env.Undefined();
}

// ---- plain functions -----------------------------------------------------------------

Napi::Value Limits(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("maxTenants", DP_MAX_TENANTS);
  o.Set("maxPorts", DP_MAX_PORTS);
  o.Set("maxVteps", DP_MAX_VTEPS);
  o.Set("fdbCapacity", DP_FDB_CAPACITY);
  o.Set("maxFrame", DP_MAX_FRAME);
  o.Set("batch", DP_BATCH);
  return o;
}

Napi::Value CounterInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env, DPC__COUNT);
  for (uint32_t i = 0; i < DPC__COUNT; i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", dp_counters[i].name);
    o.Set("help", dp_counters[i].help);
    o.Set("drop", dp_counters[i].drop);
    a.Set(i, o);
  }
  return a;
}

Napi::Value NowMs(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), (double)dp_now_ms()); }

Napi::Value TapOpen(const Napi::CallbackInfo &info) {
  Args a(info, "tapOpen");
  Napi::Object o;
  Napi::Value v;
  std::string name, netns, mac, ipv4;
  struct tap_config cfg = {};
  int64_t n = 0;
  if (!a.Object(0, "options", &o)) return {};

  if (!a.Prop(o, "name", &v) || !a.String(v, "name", &name)) return {};
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('\0') != std::string::npos)
    return a.Fail(EINVAL, "name '" + name + "' must be 1..15 bytes"), Napi::Value();
  cfg.name = name.c_str();

  if (!a.Prop(o, "netns", &v)) return {};
  if (!v.IsUndefined() && !v.IsNull()) {
    if (!a.String(v, "netns", &netns)) return {};
    cfg.netns = netns.c_str();
  }

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

// ---- data path -----------------------------------------------------------------------

// "vxlan" | "gre" | "nvgre" -> DP_ENCAP_*.
bool ParseEncap(const std::string &e, uint8_t *out) {
  if (e == "vxlan") *out = DP_ENCAP_VXLAN;
  else if (e == "gre") *out = DP_ENCAP_GRE;
  else if (e == "nvgre") *out = DP_ENCAP_NVGRE;
  else return false;
  return true;
}

std::string Endpoint(const std::string &addr, int64_t port) {
  bool v6 = addr.find(':') != std::string::npos;
  return (v6 ? "[" + addr + "]" : addr) + ":" + std::to_string(port);
}

Napi::Value DpCreate(const Napi::CallbackInfo &info) {
  Args a(info, "dpCreate");
  Napi::Object o;
  Napi::Value v;
  std::string local;
  int64_t port = 0, nsrc = DP_DEFAULT_SOURCE_PORTS;
  struct dp_config cfg = {};
  if (!a.Object(0, "options", &o)) return {};
  if (!a.Prop(o, "local", &v) || !a.String(v, "local", &local)) return {};
  if (!a.Prop(o, "port", &v) || !a.Int(v, "port", 1, 65535, &port)) return {};
  if (!a.Prop(o, "sourcePorts", &v)) return {};
  if (!v.IsUndefined() && !a.Int(v, "sourcePorts", 1, DP_MAX_SOURCE_PORTS, &nsrc)) return {};
  if (sockaddr_from_string(local.c_str(), (uint16_t)port, &cfg.local, &cfg.local_len) != 0)
    return a.Fail(EINVAL, "local '" + local + "' is not an IPv4 or IPv6 address"), Napi::Value();
  cfg.source_ports = (unsigned)nsrc;

  if (!a.Prop(o, "offloads", &v)) return {};
  if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, "offloads must be a boolean"), Napi::Value();
  cfg.no_offloads = !v.IsUndefined() && !v.As<Napi::Boolean>().Value();

  if (!a.Prop(o, "gre", &v)) return {};
  if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, "gre must be a boolean"), Napi::Value();
  cfg.gre = !v.IsUndefined() && v.As<Napi::Boolean>().Value();

  std::string local2;
  if (!a.Prop(o, "local2", &v)) return {};
  if (!v.IsUndefined()) {
    if (!a.String(v, "local2", &local2)) return {};
    if (sockaddr_from_string(local2.c_str(), (uint16_t)port, &cfg.local2, &cfg.local2_len) != 0)
      return a.Fail(EINVAL, "local2 '" + local2 + "' is not an IPv4 or IPv6 address"), Napi::Value();
    if (cfg.local2.ss_family == cfg.local.ss_family)
      return a.Fail(EINVAL, "local2 '" + local2 + "' must be of the other address family than local '" + local + "'"), Napi::Value();
  }

  int64_t queues = 1;
  if (!a.Prop(o, "queues", &v)) return {};
  if (!v.IsUndefined() && !a.Int(v, "queues", 1, DP_MAX_QUEUES, &queues)) return {};
  cfg.queues = (unsigned)queues;

  std::vector<int> adopt;
  if (!a.Prop(o, "underlayFds", &v)) return {};
  if (!v.IsUndefined()) {
    if (!a.FdArray(v, "underlayFds", 2, 1 + DP_MAX_SOURCE_PORTS, "the receive socket, then the send sockets", &adopt))
      return {};
    if (!a.Prop(o, "sourcePorts", &v)) return {};
    if (!v.IsUndefined() && nsrc != (int64_t)adopt.size() - 1)
      return a.Fail(EINVAL, "sourcePorts " + std::to_string(nsrc) + " disagrees with underlayFds (" +
                                std::to_string(adopt.size() - 1) + " send sockets)"),
             Napi::Value();
    cfg.adopt_fds = adopt.data();
    cfg.adopt_n = (unsigned)adopt.size();
    cfg.source_ports = cfg.adopt_n - 1;
  }

  struct dp *dp = nullptr;
  const char *step = "";
  int err = dp_create(&cfg, &dp, &step);
  if (err) return a.Fail(err, std::string(step) + " on " + Endpoint(local, port) + ": " + ErrText(err)), Napi::Value();

  DpBox *b = new DpBox();
  b->dp = dp;
  b->env = a.env;
  {
    std::lock_guard<std::mutex> lock(gLiveMu);
    gLive.insert(b);
  }
  // Threads must stop before the environment goes (worker exit, process exit).
  napi_add_env_cleanup_hook(a.env, EnvCleanup, b);
  return Napi::External<DpBox>::New(a.env, b, FinalizeDp);
}

Napi::Value DpStart(const Napi::CallbackInfo &info) {
  Args a(info, "dpStart");
  DpBox *b = GetDp(a);
  if (!b) return {};
  if (!info[1].IsFunction()) return a.Fail(EINVAL, "onEvents must be a function"), Napi::Value();
  if (b->async) return a.Fail(EALREADY, "the data path is already started"), Napi::Value();

  uv_loop_s *loop = nullptr;
  if (napi_get_uv_event_loop(a.env, &loop) != napi_ok || !loop)
    return a.Fail(EINVAL, "no event loop"), Napi::Value();
  napi_value resource = Napi::Object::New(a.env);
  if (napi_async_init(a.env, resource, Napi::String::New(a.env, "vtepd:events"), &b->actx) != napi_ok)
    return a.Fail(EINVAL, "napi_async_init failed"), Napi::Value();
  b->async = new uv_async_t();
  uv_async_init(loop, b->async, OnEvents);
  b->async->data = b;
  // The data path alone does not keep the process alive (a forgotten dpStop must not hang
  // a test run); the daemon's sockets and timers do.
  uv_unref(reinterpret_cast<uv_handle_t *>(b->async));
  b->onEvents = Napi::Persistent(info[1].As<Napi::Function>());

  int err = dp_start(b->dp, Notify, b->async);
  if (err) {
    std::string why = dp_last_error(b->dp);
    StopBox(b); // undo the above; dp_start has left the data path stopped or untouched
    return a.Fail(err, why), Napi::Value();
  }
  return a.env.Undefined();
}

Napi::Value DpStop(const Napi::CallbackInfo &info) {
  Args a(info, "dpStop");
  DpBox *b = GetDp(a);
  if (!b) return {};
  StopBox(b);
  return a.env.Undefined();
}

Napi::Value DpUnderlayFds(const Napi::CallbackInfo &info) {
  Args a(info, "dpUnderlayFds");
  DpBox *b = GetDp(a);
  if (!b) return {};
  int fds[1 + DP_MAX_SOURCE_PORTS];
  unsigned n = dp_underlay_fds(b->dp, fds);
  Napi::Array out = Napi::Array::New(a.env, n);
  for (unsigned i = 0; i < n; i++) out.Set(i, fds[i]);
  return out;
}

Napi::Value DpTenantSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantSet");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  int64_t vni = 0;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Int(info[2], "vni", 0, 0xFFFFFF, &vni, ERANGE))
    return {};
  return Check(a, b, dp_tenant_set(b->dp, tenant, (uint32_t)vni));
}

Napi::Value DpTenantDel(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantDel");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant)) return {};
  return Check(a, b, dp_tenant_del(b->dp, tenant));
}

Napi::Value DpTenantAccept(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantAccept");
  DpBox *b = GetDp(a);
  uint32_t tenant, vtep;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Id(2, "vtepId", DP_MAX_VTEPS, &vtep)) return {};
  if (!info[3].IsBoolean()) return a.Fail(EINVAL, "accept must be a boolean"), Napi::Value();
  return Check(a, b, dp_tenant_accept(b->dp, tenant, vtep, info[3].As<Napi::Boolean>().Value()));
}

Napi::Value DpTenantAcceptAny(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantAcceptAny");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant)) return {};
  if (!info[2].IsBoolean()) return a.Fail(EINVAL, "any must be a boolean"), Napi::Value();
  return Check(a, b, dp_tenant_accept_any(b->dp, tenant, info[2].As<Napi::Boolean>().Value()));
}

Napi::Value DpPortSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpPortSet");
  DpBox *b = GetDp(a);
  uint32_t port, tenant;
  int fd;
  if (!b || !a.Id(1, "portId", DP_MAX_PORTS, &port) || !a.Id(2, "tenantId", DP_MAX_TENANTS, &tenant) ||
      !a.Fd(3, &fd))
    return {};
  int vnet = -1; // omitted: as the fd says (a TAP's IFF_VNET_HDR, else plain)
  std::vector<int> fds{fd};
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    Napi::Object o;
    Napi::Value v;
    if (!a.Object(4, "options", &o) || !a.Prop(o, "vnetHdr", &v)) return {};
    if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, "vnetHdr must be a boolean"), Napi::Value();
    if (!v.IsUndefined()) vnet = v.As<Napi::Boolean>().Value() ? 1 : 0;
    if (!a.Prop(o, "queueFds", &v)) return {};
    if (!v.IsUndefined() && !a.FdArray(v, "queueFds", 0, DP_MAX_QUEUES - 1, "queues 1.. of a multi-queue TAP", &fds))
      return {};
  }
  return Check(a, b, dp_port_set_queues(b->dp, port, tenant, fds.data(), (unsigned)fds.size(), vnet));
}

Napi::Value DpPortDel(const Napi::CallbackInfo &info) {
  Args a(info, "dpPortDel");
  DpBox *b = GetDp(a);
  uint32_t port;
  if (!b || !a.Id(1, "portId", DP_MAX_PORTS, &port)) return {};
  return Check(a, b, dp_port_del(b->dp, port));
}

Napi::Value DpVtepSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpVtepSet");
  DpBox *b = GetDp(a);
  uint32_t vtep;
  std::string addr;
  int64_t port = 0;
  if (!b || !a.Id(1, "vtepId", DP_MAX_VTEPS, &vtep) || !a.String(info[2], "address", &addr) ||
      !a.Int(info[3], "port", 0, 65535, &port))
    return {};
  struct sockaddr_storage ss;
  socklen_t len;
  if (sockaddr_from_string(addr.c_str(), (uint16_t)port, &ss, &len) != 0)
    return a.Fail(EINVAL, "address '" + addr + "' is not an IPv4 or IPv6 address"), Napi::Value();
  struct dp_vtep_opts o = {};
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    Napi::Object opts;
    Napi::Value v;
    int64_t mtu = 0;
    if (!a.Object(4, "options", &opts)) return {};
    if (!a.Prop(opts, "mtu", &v)) return {};
    if (!v.IsUndefined() && !a.Int(v, "mtu", 0, 65535, &mtu)) return {};
    o.mtu = (uint16_t)mtu;
    for (auto [key, out] : {std::pair<const char *, bool *>{"fixedSourcePort", &o.fixed_src}, {"matchPort", &o.match_port}}) {
      if (!a.Prop(opts, key, &v)) return {};
      if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, std::string(key) + " must be a boolean"), Napi::Value();
      *out = !v.IsUndefined() && v.As<Napi::Boolean>().Value();
    }
    if (!a.Prop(opts, "encap", &v)) return {};
    if (!v.IsUndefined()) {
      std::string e;
      if (!a.String(v, "encap", &e)) return {};
      if (!ParseEncap(e, &o.encap))
        return a.Fail(EINVAL, "encap '" + e + "' is none of vxlan, gre, nvgre"), Napi::Value();
    }
  }
  return Check(a, b, dp_vtep_set_ex(b->dp, vtep, &ss, len, &o));
}

// dpTenantEncaps(dp, tenantId, ['vxlan', 'gre', 'nvgre']): what the tenant takes on receive.
Napi::Value DpTenantEncaps(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantEncaps");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant)) return {};
  if (!info[2].IsArray()) return a.Fail(EINVAL, "encaps must be an array of 'vxlan', 'gre', 'nvgre'"), Napi::Value();
  Napi::Array arr = info[2].As<Napi::Array>();
  unsigned mask = 0;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v;
    std::string e;
    uint8_t code = 0;
    const std::string name = "encaps[" + std::to_string(i) + "]";
    if (!a.Prop(arr, std::to_string(i).c_str(), &v) || !a.String(v, name.c_str(), &e)) return {};
    if (!ParseEncap(e, &code)) return a.Fail(EINVAL, "encaps[" + std::to_string(i) + "] '" + e + "' is none of vxlan, gre, nvgre"), Napi::Value();
    mask |= DP_ENCAP_BIT(code);
  }
  return Check(a, b, dp_tenant_encaps(b->dp, tenant, mask));
}

Napi::Value DpTenantRelay(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantRelay");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant)) return {};
  if (!info[2].IsBoolean()) return a.Fail(EINVAL, "relay must be a boolean"), Napi::Value();
  return Check(a, b, dp_tenant_relay(b->dp, tenant, info[2].As<Napi::Boolean>().Value()));
}

Napi::Value DpTenantMss(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantMss");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  int64_t v4 = 0, v6 = 0;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Int(info[2], "mssV4", 0, 65535, &v4) ||
      !a.Int(info[3], "mssV6", 0, 65535, &v6))
    return {};
  return Check(a, b, dp_tenant_mss(b->dp, tenant, (uint16_t)v4, (uint16_t)v6));
}

// dpSendControl(dp, address, port, payload, { df = true, fromRxSocket = true })
Napi::Value DpSendControl(const Napi::CallbackInfo &info) {
  Args a(info, "dpSendControl");
  DpBox *b = GetDp(a);
  std::string addr;
  int64_t port = 0;
  const uint8_t *data = nullptr;
  size_t n = 0;
  if (!b || !a.String(info[1], "address", &addr) || !a.Int(info[2], "port", 1, 65535, &port) ||
      !a.Bytes(info[3], "payload", &data, &n))
    return {};
  if (n == 0 || n > 65507) return a.Fail(EMSGSIZE, "payload of " + std::to_string(n) + " bytes is not 1..65507"), Napi::Value();
  bool df = true, rx = true;
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    Napi::Object opts;
    Napi::Value v;
    if (!a.Object(4, "options", &opts)) return {};
    for (auto [key, out] : {std::pair<const char *, bool *>{"df", &df}, {"fromRxSocket", &rx}}) {
      if (!a.Prop(opts, key, &v)) return {};
      if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, std::string(key) + " must be a boolean"), Napi::Value();
      if (!v.IsUndefined()) *out = v.As<Napi::Boolean>().Value();
    }
  }
  struct sockaddr_storage ss;
  socklen_t len;
  if (sockaddr_from_string(addr.c_str(), (uint16_t)port, &ss, &len) != 0)
    return a.Fail(EINVAL, "address '" + addr + "' is not an IPv4 or IPv6 address"), Napi::Value();
  return Check(a, b, dp_send_control(b->dp, &ss, len, data, n, df, rx));
}

Napi::Value DpVtepDel(const Napi::CallbackInfo &info) {
  Args a(info, "dpVtepDel");
  DpBox *b = GetDp(a);
  uint32_t vtep;
  if (!b || !a.Id(1, "vtepId", DP_MAX_VTEPS, &vtep)) return {};
  return Check(a, b, dp_vtep_del(b->dp, vtep));
}

Napi::Value DpFdbSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpFdbSet");
  DpBox *b = GetDp(a);
  uint32_t tenant, id;
  uint8_t mac[6];
  int64_t kind = 0;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Mac(2, mac) ||
      !a.Int(info[3], "kind", DP_FDB_PORT, DP_FDB_VTEP, &kind))
    return {};
  if (!a.Id(4, kind == DP_FDB_PORT ? "portId" : "vtepId", kind == DP_FDB_PORT ? DP_MAX_PORTS : DP_MAX_VTEPS, &id))
    return {};
  return Check(a, b, dp_fdb_set(b->dp, tenant, mac, (uint8_t)kind, id));
}

Napi::Value DpFdbDel(const Napi::CallbackInfo &info) {
  Args a(info, "dpFdbDel");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  uint8_t mac[6];
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Mac(2, mac)) return {};
  return Check(a, b, dp_fdb_del(b->dp, tenant, mac));
}

Napi::Value DpFdbIdle(const Napi::CallbackInfo &info) {
  Args a(info, "dpFdbIdle");
  DpBox *b = GetDp(a);
  if (!b) return {};
  uint8_t *data;
  size_t len;
  int err = dp_fdb_idle(b->dp, &data, &len);
  if (err) return Check(a, b, err);
  return Napi::Buffer<uint8_t>::New(a.env, data, len, [](Napi::Env, uint8_t *p) { free(p); });
}

Napi::Value DpTransmit(const Napi::CallbackInfo &info) {
  Args a(info, "dpTransmit");
  DpBox *b = GetDp(a);
  uint32_t tenant, sent = 0;
  const uint8_t *frame = nullptr;
  size_t len = 0, nports = 0, nvteps = 0;
  const uint32_t *ports = nullptr, *vteps = nullptr;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Bytes(info[2], "frame", &frame, &len) ||
      !a.Ids(3, "ports", DP_MAX_PORTS, &ports, &nports) || !a.Ids(4, "vteps", DP_MAX_VTEPS, &vteps, &nvteps))
    return {};
  int err = dp_transmit(b->dp, tenant, frame, len, ports, nports, vteps, nvteps, &sent);
  if (err) return Check(a, b, err);
  return Napi::Number::New(a.env, sent);
}

Napi::Object IoObject(Napi::Env env, const struct dp_io_counters &c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("rxPackets", (double)c.rx_packets);
  o.Set("rxBytes", (double)c.rx_bytes);
  o.Set("txPackets", (double)c.tx_packets);
  o.Set("txBytes", (double)c.tx_bytes);
  o.Set("drops", (double)c.drops);
  return o;
}

Napi::Value DpStats(const Napi::CallbackInfo &info) {
  Args a(info, "dpStats");
  DpBox *b = GetDp(a);
  if (!b) return {};
  uint64_t counters[DPC__COUNT];
  std::vector<struct dp_io_stat> ports(DP_MAX_PORTS), vteps(DP_MAX_VTEPS);
  uint32_t np = 0, nv = 0;
  dp_stats_read(b->dp, counters, ports.data(), &np, vteps.data(), &nv);

  Napi::Object out = Napi::Object::New(a.env), c = Napi::Object::New(a.env);
  Napi::Object po = Napi::Object::New(a.env), vo = Napi::Object::New(a.env);
  for (uint32_t i = 0; i < DPC__COUNT; i++) c.Set(dp_counters[i].name, (double)counters[i]);
  for (uint32_t i = 0; i < np; i++) po.Set(ports[i].id, IoObject(a.env, ports[i].c));
  for (uint32_t i = 0; i < nv; i++) vo.Set(vteps[i].id, IoObject(a.env, vteps[i].c));
  out.Set("counters", c);
  out.Set("ports", po);
  out.Set("vteps", vo);
  std::vector<struct dp_io_stat> tenants(DP_MAX_TENANTS);
  unsigned nt = dp_tenant_stats(b->dp, tenants.data());
  Napi::Object to = Napi::Object::New(a.env);
  for (unsigned i = 0; i < nt; i++) to.Set(tenants[i].id, IoObject(a.env, tenants[i].c));
  out.Set("tenants", to);
  uint64_t qe[DP_MAX_QUEUES], qd[DP_MAX_QUEUES];
  unsigned nq = dp_queue_stats(b->dp, qe, qd);
  Napi::Array qa = Napi::Array::New(a.env, nq);
  for (unsigned q = 0; q < nq; q++) {
    Napi::Object x = Napi::Object::New(a.env);
    x.Set("encapFrames", (double)qe[q]);
    x.Set("decapPackets", (double)qd[q]);
    qa.Set(q, x);
  }
  out.Set("queues", qa);
  return out;
}

// ---- test helpers --------------------------------------------------------------------

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

} // namespace
void ScmExports(Napi::Env env, Napi::Object exports); // fd handover block, end of file
namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("limits", Napi::Function::New(env, Limits, "limits"));
  exports.Set("counterInfo", Napi::Function::New(env, CounterInfo, "counterInfo"));
  exports.Set("nowMs", Napi::Function::New(env, NowMs, "nowMs"));
  exports.Set("tapOpen", Napi::Function::New(env, TapOpen, "tapOpen"));
  exports.Set("fdClose", Napi::Function::New(env, FdClose, "fdClose"));
  exports.Set("dpCreate", Napi::Function::New(env, DpCreate, "dpCreate"));
  exports.Set("dpStart", Napi::Function::New(env, DpStart, "dpStart"));
  exports.Set("dpStop", Napi::Function::New(env, DpStop, "dpStop"));
  exports.Set("dpUnderlayFds", Napi::Function::New(env, DpUnderlayFds, "dpUnderlayFds"));
  exports.Set("dpTenantSet", Napi::Function::New(env, DpTenantSet, "dpTenantSet"));
  exports.Set("dpTenantAccept", Napi::Function::New(env, DpTenantAccept, "dpTenantAccept"));
  exports.Set("dpTenantAcceptAny", Napi::Function::New(env, DpTenantAcceptAny, "dpTenantAcceptAny"));
  exports.Set("dpTenantDel", Napi::Function::New(env, DpTenantDel, "dpTenantDel"));
  exports.Set("dpTenantRelay", Napi::Function::New(env, DpTenantRelay, "dpTenantRelay"));
  exports.Set("dpTenantMss", Napi::Function::New(env, DpTenantMss, "dpTenantMss"));
  exports.Set("dpSendControl", Napi::Function::New(env, DpSendControl, "dpSendControl"));
  exports.Set("dpPortSet", Napi::Function::New(env, DpPortSet, "dpPortSet"));
  exports.Set("dpPortDel", Napi::Function::New(env, DpPortDel, "dpPortDel"));
  exports.Set("dpVtepSet", Napi::Function::New(env, DpVtepSet, "dpVtepSet"));
  exports.Set("dpTenantEncaps", Napi::Function::New(env, DpTenantEncaps, "dpTenantEncaps"));
  exports.Set("dpVtepDel", Napi::Function::New(env, DpVtepDel, "dpVtepDel"));
  exports.Set("dpFdbSet", Napi::Function::New(env, DpFdbSet, "dpFdbSet"));
  exports.Set("dpFdbDel", Napi::Function::New(env, DpFdbDel, "dpFdbDel"));
  exports.Set("dpFdbIdle", Napi::Function::New(env, DpFdbIdle, "dpFdbIdle"));
  exports.Set("dpTransmit", Napi::Function::New(env, DpTransmit, "dpTransmit"));
  exports.Set("dpStats", Napi::Function::New(env, DpStats, "dpStats"));
  exports.Set("testSocketPair", Napi::Function::New(env, TestSocketPair, "testSocketPair"));
  exports.Set("testRead", Napi::Function::New(env, TestRead, "testRead"));
  exports.Set("testWrite", Napi::Function::New(env, TestWrite, "testWrite"));
  exports.Set("testSegment", Napi::Function::New(env, TestSegment, "testSegment"));
  exports.Set("testCoalesce", Napi::Function::New(env, TestCoalesce, "testCoalesce"));
  ScmExports(env, exports);
  return exports;
}

} // namespace

NODE_API_MODULE(vtepd, Init)

// ==== fd handover (SCM_RIGHTS) and systemd notify: native/scm.c ==========================
// Appended block, owned by the operations work (takeover restart). Exported from Init by
// ScmExports(); the surface is declared in src/native/addon.ts (scmListen, scmAccept, scmSend,
// sdNotify).
#include "scm.h"

namespace {

void ScmThrow(Args &a, int err, const std::string &what) {
  if (err == EPROTO) {
    Napi::Error e = Napi::Error::New(a.env, std::string(a.call) + ": " + what + ": " + ErrText(err));
    e.Set("code", Napi::String::New(a.env, "EPROTO"));
    e.ThrowAsJavaScriptException();
    return;
  }
  a.Fail(err, what + ": " + ErrText(err));
}

// scmListen(path) -> fd
Napi::Value ScmListen(const Napi::CallbackInfo &info) {
  Args a(info, "scmListen");
  std::string path;
  if (!a.String(info[0], "path", &path)) return {};
  int fd = -1;
  int err = scm_listen(path.c_str(), &fd);
  if (err) return ScmThrow(a, err, path), Napi::Value();
  return Napi::Number::New(a.env, fd);
}

// scmAccept(fd, timeoutMs, ioTimeoutMs) -> { fds, payload } | null on timeout
Napi::Value ScmAccept(const Napi::CallbackInfo &info) {
  Args a(info, "scmAccept");
  int fd;
  int64_t timeout = 0, io = 5000;
  if (!a.Fd(0, &fd) || !a.Int(info[1], "timeoutMs", 0, 0x7fffffff, &timeout)) return {};
  if (info.Length() > 2 && !info[2].IsUndefined() && !a.Int(info[2], "ioTimeoutMs", 1, 0x7fffffff, &io)) return {};
  int *fds = nullptr;
  size_t nfds = 0, len = 0;
  uint8_t *payload = nullptr;
  int err = scm_accept(fd, (int)timeout, (int)io, &fds, &nfds, &payload, &len);
  if (err == ETIMEDOUT) return a.env.Null();
  if (err) return ScmThrow(a, err, "receiving the handover"), Napi::Value();
  Napi::Object out = Napi::Object::New(a.env);
  Napi::Array arr = Napi::Array::New(a.env, nfds);
  for (size_t i = 0; i < nfds; i++) arr.Set((uint32_t)i, Napi::Number::New(a.env, fds[i]));
  out.Set("fds", arr);
  out.Set("payload", Napi::Buffer<uint8_t>::Copy(a.env, payload, len));
  free(fds);
  free(payload);
  return out;
}

// scmSend(path, fds, payload, timeoutMs)
Napi::Value ScmSend(const Napi::CallbackInfo &info) {
  Args a(info, "scmSend");
  std::string path;
  const uint8_t *data = nullptr;
  size_t len = 0;
  int64_t timeout = 0;
  if (!a.String(info[0], "path", &path)) return {};
  if (!info[1].IsArray()) return a.Fail(EINVAL, "fds must be an array of integers"), Napi::Value();
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<int> fds(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    int64_t v = 0;
    if (!a.Int(arr.Get(i), "fds[]", 0, 0x7fffffff, &v)) return {};
    fds[i] = (int)v;
  }
  if (!a.Bytes(info[2], "payload", &data, &len) || !a.Int(info[3], "timeoutMs", 1, 0x7fffffff, &timeout)) return {};
  int err = scm_send(path.c_str(), fds.data(), fds.size(), data, len, (int)timeout);
  if (err) ScmThrow(a, err, path);
  return a.env.Undefined();
}

// sdNotify(state) -> true if sent, false when not started by systemd
Napi::Value SdNotify(const Napi::CallbackInfo &info) {
  Args a(info, "sdNotify");
  std::string state;
  if (!a.String(info[0], "state", &state)) return {};
  int sent = 0;
  int err = scm_sd_notify(state.c_str(), &sent);
  if (err) return ScmThrow(a, err, "NOTIFY_SOCKET"), Napi::Value();
  return Napi::Boolean::New(a.env, sent != 0);
}

} // namespace

void ScmExports(Napi::Env env, Napi::Object exports) {
  exports.Set("scmListen", Napi::Function::New(env, ScmListen, "scmListen"));
  exports.Set("scmAccept", Napi::Function::New(env, ScmAccept, "scmAccept"));
  exports.Set("scmSend", Napi::Function::New(env, ScmSend, "scmSend"));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
}
// ==== end of fd handover block =============================================================
