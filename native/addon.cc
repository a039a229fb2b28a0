// N-API glue only: the module's Init and its plain functions; the bindings live per concern
// in addon_dp.cc, addon_tap.cc and addon_scm.cc, the shared argument checks and error
// mapping in addon.h. The surface is declared in src/native/addon.ts. Test-only bindings
// are another module (addon_test.cc, build/Release/vtepd_test.node) the product never loads.
#include "addon.h"

#include "fastpath.h"

namespace {

using namespace vtepd;

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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Export(env, exports, "limits", Limits);
  Export(env, exports, "counterInfo", CounterInfo);
  Export(env, exports, "nowMs", NowMs);
  TapExports(env, exports);
  DpExports(env, exports);
  ScmExports(env, exports);
  return exports;
}

} // namespace

NODE_API_MODULE(vtepd, Init)
