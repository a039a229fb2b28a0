// The data path's bindings: a handle per dpCreate (an External), control calls, event
// delivery to JS (uv_async, one Buffer of records per wake-up), stats (native/fastpath.h).
#include "addon.h"

#include <sched.h>
#include <uv.h>

#include <mutex>
#include <unordered_set>

#include "dpx.h"
#include "secure.h"
#include "udp.h"

namespace vtepd {
namespace {

// ---- data-path handles --------------------------------------------------------------

struct DpBox {
  struct dpx *dp = nullptr;
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
  if (b->dp) dpx_stop(b->dp); // joins the threads: nothing calls Notify after this
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
  dpx_events_take(b->dp, &data, &len);
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
  dpx_destroy(b->dp);
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

// C control functions return 0 or errno and leave the reason in dpx_last_error().
Napi::Value Check(Args &a, DpBox *b, int err) {
  if (err) a.Fail(err, dpx_last_error(b->dp));
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

  if (!a.Prop(o, "cipher", &v)) return {};
  if (!v.IsUndefined()) {
    std::string c;
    if (!a.String(v, "cipher", &c)) return {};
    if (!(cfg.cipher = sec_cipher_parse(c.c_str())))
      return a.Fail(EINVAL, "cipher '" + c + "' is neither aes-256-gcm nor chacha20-poly1305"), Napi::Value();
  }

  int64_t queues = 1;
  if (!a.Prop(o, "queues", &v)) return {};
  if (!v.IsUndefined() && !a.Int(v, "queues", 1, DP_MAX_QUEUES, &queues)) return {};
  cfg.queues = (unsigned)queues;

  if (!a.Prop(o, "cpus", &v)) return {};
  if (!v.IsUndefined()) {
    if (!v.IsArray()) return a.Fail(EINVAL, "cpus must be an array of CPU numbers"), Napi::Value();
    Napi::Array arr = v.As<Napi::Array>();
    if (arr.Length() < 1 || arr.Length() > DP_MAX_CPUS)
      return a.Fail(EINVAL, "cpus must hold 1.." + std::to_string(DP_MAX_CPUS) + " CPU numbers"), Napi::Value();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value e;
      int64_t c = 0;
      if (!a.Prop(arr, std::to_string(i).c_str(), &e) || !a.Int(e, ("cpus[" + std::to_string(i) + "]").c_str(), 0, CPU_SETSIZE - 1, &c))
        return {};
      cfg.cpus[cfg.ncpus++] = (int)c;
    }
  }

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

  // process: the data path in a process of its own, this executable (vtepd-dp; native/dpx.h).
  std::string exe;
  if (!a.Prop(o, "process", &v)) return {};
  if (!v.IsUndefined()) {
    if (!a.String(v, "process", &exe)) return {};
    if (exe.empty() || exe[0] != '/')
      return a.Fail(EINVAL, "process must be the absolute path of vtepd-dp, not '" + exe + "'"), Napi::Value();
  }

  struct dpx *dp = nullptr;
  const char *step = "";
  int err = dpx_create(&cfg, exe.empty() ? nullptr : exe.c_str(), &dp, &step);
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

  int err = dpx_start(b->dp, Notify, b->async);
  if (err) {
    std::string why = dpx_last_error(b->dp);
    StopBox(b); // undo the above; dpx_start has left the data path stopped or untouched
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
  unsigned n = dpx_underlay_fds(b->dp, fds);
  Napi::Array out = Napi::Array::New(a.env, n);
  for (unsigned i = 0; i < n; i++) out.Set(i, fds[i]);
  return out;
}

// dpXDel(dp, id): delete a tenant, port or VTEP by id.
Napi::Value DelById(const Napi::CallbackInfo &info, const char *call, const char *idName, uint32_t max,
                    int (*del)(struct dpx *, uint32_t)) {
  Args a(info, call);
  DpBox *b = GetDp(a);
  uint32_t id;
  if (!b || !a.Id(1, idName, max, &id)) return {};
  return Check(a, b, del(b->dp, id));
}

// dpTenantX(dp, tenantId, flag): one boolean setting of a tenant.
Napi::Value TenantFlag(const Napi::CallbackInfo &info, const char *call, const char *flag,
                       int (*set)(struct dpx *, uint32_t, bool)) {
  Args a(info, call);
  DpBox *b = GetDp(a);
  uint32_t tenant;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant)) return {};
  if (!info[2].IsBoolean()) return a.Fail(EINVAL, std::string(flag) + " must be a boolean"), Napi::Value();
  return Check(a, b, set(b->dp, tenant, info[2].As<Napi::Boolean>().Value()));
}

Napi::Value DpTenantSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantSet");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  int64_t vni = 0;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Int(info[2], "vni", 0, 0xFFFFFF, &vni, ERANGE))
    return {};
  return Check(a, b, dpx_tenant_set(b->dp, tenant, (uint32_t)vni));
}

Napi::Value DpTenantDel(const Napi::CallbackInfo &info) {
  return DelById(info, "dpTenantDel", "tenantId", DP_MAX_TENANTS, dpx_tenant_del);
}

Napi::Value DpTenantAccept(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantAccept");
  DpBox *b = GetDp(a);
  uint32_t tenant, vtep;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Id(2, "vtepId", DP_MAX_VTEPS, &vtep)) return {};
  if (!info[3].IsBoolean()) return a.Fail(EINVAL, "accept must be a boolean"), Napi::Value();
  return Check(a, b, dpx_tenant_accept(b->dp, tenant, vtep, info[3].As<Napi::Boolean>().Value()));
}

Napi::Value DpTenantAcceptAny(const Napi::CallbackInfo &info) {
  return TenantFlag(info, "dpTenantAcceptAny", "any", dpx_tenant_accept_any);
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
  return Check(a, b, dpx_port_set_queues(b->dp, port, tenant, fds.data(), (unsigned)fds.size(), vnet));
}

// dpTrunkSet(dp, portId, fd): an attached interface's packet socket (behind a virtio_net_hdr) as a trunk (no tenant);
// any other fd (a test's socketpair) reads and writes plain frames.
Napi::Value DpTrunkSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpTrunkSet");
  DpBox *b = GetDp(a);
  uint32_t port;
  int fd;
  if (!b || !a.Id(1, "portId", DP_MAX_PORTS, &port) || !a.Fd(2, &fd)) return {};
  return Check(a, b, dpx_trunk_set(b->dp, port, fd, -1));
}

// dpVlanPortSet(dp, portId, tenantId, trunkId, vlan): tenant's VLAN port on a trunk (vlan 0: untagged).
Napi::Value DpVlanPortSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpVlanPortSet");
  DpBox *b = GetDp(a);
  uint32_t port, tenant, trunk;
  if (!b || !a.Id(1, "portId", DP_MAX_PORTS, &port) || !a.Id(2, "tenantId", DP_MAX_TENANTS, &tenant) ||
      !a.Id(3, "trunkId", DP_MAX_PORTS, &trunk))
    return {};
  if (!info[4].IsNumber()) return a.Fail(EINVAL, "vlan must be a number 0..4094"), Napi::Value();
  double v = info[4].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 4094 && v == (double)(uint32_t)v)) return a.Fail(EINVAL, "vlan must be an integer 0..4094"), Napi::Value();
  return Check(a, b, dpx_vlan_port_set(b->dp, port, tenant, trunk, (uint32_t)v));
}

Napi::Value DpPortDel(const Napi::CallbackInfo &info) {
  return DelById(info, "dpPortDel", "portId", DP_MAX_PORTS, dpx_port_del);
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
  return Check(a, b, dpx_vtep_set_ex(b->dp, vtep, &ss, len, &o));
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
  return Check(a, b, dpx_tenant_encaps(b->dp, tenant, mask));
}

Napi::Value DpTenantInnerVlan(const Napi::CallbackInfo &info) {
  return TenantFlag(info, "dpTenantInnerVlan", "allow", dpx_tenant_inner_vlan);
}

Napi::Value DpTenantRelay(const Napi::CallbackInfo &info) {
  return TenantFlag(info, "dpTenantRelay", "relay", dpx_tenant_relay);
}

Napi::Value DpTenantMss(const Napi::CallbackInfo &info) {
  Args a(info, "dpTenantMss");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  int64_t v4 = 0, v6 = 0;
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Int(info[2], "mssV4", 0, 65535, &v4) ||
      !a.Int(info[3], "mssV6", 0, 65535, &v6))
    return {};
  return Check(a, b, dpx_tenant_mss(b->dp, tenant, (uint16_t)v4, (uint16_t)v6));
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
  return Check(a, b, dpx_send_control(b->dp, &ss, len, data, n, df, rx));
}

// ---- encrypted tunnels (native/secure.h) ------------------------------------------------

// A 32-byte key argument.
bool Key(Args &a, size_t i, const uint8_t **key) {
  size_t n = 0;
  if (!a.Bytes(a.info[i], "key", key, &n)) return false;
  if (n != DP_SEC_KEYLEN) return a.Fail(EINVAL, "key must be 32 bytes, got " + std::to_string(n));
  return true;
}

// dpKeyRxSet(dp, index, vtepId, key)
Napi::Value DpKeyRxSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpKeyRxSet");
  DpBox *b = GetDp(a);
  int64_t index = 0;
  uint32_t vtep;
  const uint8_t *key;
  if (!b || !a.Int(info[1], "index", 1, 0xFFFFFFFF, &index, ERANGE) || !a.Id(2, "vtepId", DP_MAX_VTEPS, &vtep) ||
      !Key(a, 3, &key))
    return {};
  return Check(a, b, dpx_key_rx_set(b->dp, (uint32_t)index, vtep, key));
}

// dpKeyRxDel(dp, index)
Napi::Value DpKeyRxDel(const Napi::CallbackInfo &info) {
  Args a(info, "dpKeyRxDel");
  DpBox *b = GetDp(a);
  int64_t index = 0;
  if (!b || !a.Int(info[1], "index", 1, 0xFFFFFFFF, &index, ERANGE)) return {};
  return Check(a, b, dpx_key_rx_del(b->dp, (uint32_t)index));
}

// dpKeyTxSet(dp, vtepId, remoteIndex, key)
Napi::Value DpKeyTxSet(const Napi::CallbackInfo &info) {
  Args a(info, "dpKeyTxSet");
  DpBox *b = GetDp(a);
  uint32_t vtep;
  int64_t remote = 0;
  const uint8_t *key;
  if (!b || !a.Id(1, "vtepId", DP_MAX_VTEPS, &vtep) || !a.Int(info[2], "remoteIndex", 0, 0xFFFFFFFF, &remote, ERANGE) ||
      !Key(a, 3, &key))
    return {};
  return Check(a, b, dpx_key_tx_set(b->dp, vtep, (uint32_t)remote, key));
}

Napi::Value DpKeyTxDel(const Napi::CallbackInfo &info) {
  return DelById(info, "dpKeyTxDel", "vtepId", DP_MAX_VTEPS, dpx_key_tx_del);
}

Napi::Value DpTenantEncrypt(const Napi::CallbackInfo &info) {
  return TenantFlag(info, "dpTenantEncrypt", "required", dpx_tenant_encrypt);
}

// dpSendSecure(dp, vtepId, payload, { df = true })
Napi::Value DpSendSecure(const Napi::CallbackInfo &info) {
  Args a(info, "dpSendSecure");
  DpBox *b = GetDp(a);
  uint32_t vtep;
  const uint8_t *data = nullptr;
  size_t n = 0;
  if (!b || !a.Id(1, "vtepId", DP_MAX_VTEPS, &vtep) || !a.Bytes(info[2], "payload", &data, &n)) return {};
  bool df = true;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    Napi::Object opts;
    Napi::Value v;
    if (!a.Object(3, "options", &opts) || !a.Prop(opts, "df", &v)) return {};
    if (!v.IsUndefined() && !v.IsBoolean()) return a.Fail(EINVAL, "df must be a boolean"), Napi::Value();
    if (!v.IsUndefined()) df = v.As<Napi::Boolean>().Value();
  }
  return Check(a, b, dpx_send_secure(b->dp, vtep, data, n, df));
}

// dpProcess(dp): null for a data path in this process; else { pid, alive, exit? }.
Napi::Value DpProcess(const Napi::CallbackInfo &info) {
  Args a(info, "dpProcess");
  DpBox *b = GetDp(a);
  if (!b) return {};
  bool alive = true;
  char exit[64];
  pid_t pid = dpx_process(b->dp, &alive, exit, sizeof exit);
  if (!pid) return a.env.Null();
  Napi::Object o = Napi::Object::New(a.env);
  o.Set("pid", (double)pid);
  o.Set("alive", alive);
  if (!alive) o.Set("exit", exit);
  return o;
}

Napi::Value DpCipher(const Napi::CallbackInfo &info) {
  Args a(info, "dpCipher");
  DpBox *b = GetDp(a);
  if (!b) return {};
  return Napi::String::New(a.env, dpx_cipher(b->dp));
}

Napi::Value DpVtepDel(const Napi::CallbackInfo &info) {
  return DelById(info, "dpVtepDel", "vtepId", DP_MAX_VTEPS, dpx_vtep_del);
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
  return Check(a, b, dpx_fdb_set(b->dp, tenant, mac, (uint8_t)kind, id));
}

Napi::Value DpFdbDel(const Napi::CallbackInfo &info) {
  Args a(info, "dpFdbDel");
  DpBox *b = GetDp(a);
  uint32_t tenant;
  uint8_t mac[6];
  if (!b || !a.Id(1, "tenantId", DP_MAX_TENANTS, &tenant) || !a.Mac(2, mac)) return {};
  return Check(a, b, dpx_fdb_del(b->dp, tenant, mac));
}

Napi::Value DpFdbIdle(const Napi::CallbackInfo &info) {
  Args a(info, "dpFdbIdle");
  DpBox *b = GetDp(a);
  if (!b) return {};
  uint8_t *data;
  size_t len;
  int err = dpx_fdb_idle(b->dp, &data, &len);
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
  int err = dpx_transmit(b->dp, tenant, frame, len, ports, nports, vteps, nvteps, &sent);
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
  dpx_stats_read(b->dp, counters, ports.data(), &np, vteps.data(), &nv);

  Napi::Object out = Napi::Object::New(a.env), c = Napi::Object::New(a.env);
  Napi::Object po = Napi::Object::New(a.env), vo = Napi::Object::New(a.env);
  for (uint32_t i = 0; i < DPC__COUNT; i++) c.Set(dp_counters[i].name, (double)counters[i]);
  for (uint32_t i = 0; i < np; i++) po.Set(ports[i].id, IoObject(a.env, ports[i].c));
  for (uint32_t i = 0; i < nv; i++) vo.Set(vteps[i].id, IoObject(a.env, vteps[i].c));
  out.Set("counters", c);
  out.Set("ports", po);
  out.Set("vteps", vo);
  std::vector<struct dp_io_stat> tenants(DP_MAX_TENANTS);
  unsigned nt = dpx_tenant_stats(b->dp, tenants.data());
  Napi::Object to = Napi::Object::New(a.env);
  for (unsigned i = 0; i < nt; i++) to.Set(tenants[i].id, IoObject(a.env, tenants[i].c));
  out.Set("tenants", to);
  uint64_t qe[DP_MAX_QUEUES], qd[DP_MAX_QUEUES];
  unsigned nq = dpx_queue_stats(b->dp, qe, qd);
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

} // namespace

void DpExports(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "dpCreate", DpCreate);
  Export(env, exports, "dpStart", DpStart);
  Export(env, exports, "dpStop", DpStop);
  Export(env, exports, "dpUnderlayFds", DpUnderlayFds);
  Export(env, exports, "dpTenantSet", DpTenantSet);
  Export(env, exports, "dpTenantAccept", DpTenantAccept);
  Export(env, exports, "dpTenantAcceptAny", DpTenantAcceptAny);
  Export(env, exports, "dpTenantDel", DpTenantDel);
  Export(env, exports, "dpTenantRelay", DpTenantRelay);
  Export(env, exports, "dpTenantInnerVlan", DpTenantInnerVlan);
  Export(env, exports, "dpTenantMss", DpTenantMss);
  Export(env, exports, "dpSendControl", DpSendControl);
  Export(env, exports, "dpPortSet", DpPortSet);
  Export(env, exports, "dpPortDel", DpPortDel);
  Export(env, exports, "dpTrunkSet", DpTrunkSet);
  Export(env, exports, "dpVlanPortSet", DpVlanPortSet);
  Export(env, exports, "dpVtepSet", DpVtepSet);
  Export(env, exports, "dpTenantEncaps", DpTenantEncaps);
  Export(env, exports, "dpVtepDel", DpVtepDel);
  Export(env, exports, "dpFdbSet", DpFdbSet);
  Export(env, exports, "dpFdbDel", DpFdbDel);
  Export(env, exports, "dpFdbIdle", DpFdbIdle);
  Export(env, exports, "dpTransmit", DpTransmit);
  Export(env, exports, "dpStats", DpStats);
  Export(env, exports, "dpKeyRxSet", DpKeyRxSet);
  Export(env, exports, "dpKeyRxDel", DpKeyRxDel);
  Export(env, exports, "dpKeyTxSet", DpKeyTxSet);
  Export(env, exports, "dpKeyTxDel", DpKeyTxDel);
  Export(env, exports, "dpTenantEncrypt", DpTenantEncrypt);
  Export(env, exports, "dpSendSecure", DpSendSecure);
  Export(env, exports, "dpCipher", DpCipher);
  Export(env, exports, "dpProcess", DpProcess);
}

} // namespace vtepd
