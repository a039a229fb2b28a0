// N-API glue shared by the addon's files (addon.cc, addon_dp.cc, addon_tap.cc,
// addon_scm.cc) and the test addon (addon_test.cc): errno -> Error with a string `code`,
// and Args, the argument checks of one call. Header-only, so each target compiles its own.
#ifndef VTEPD_ADDON_H
#define VTEPD_ADDON_H

#include <napi.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace vtepd {

inline const char *ErrnoName(int e) {
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
    E(ENOKEY)
#undef E
  }
  return "EUNKNOWN";
}

inline std::string ErrText(int e) {
  char buf[128];
  return strerror_r(e, buf, sizeof buf); // GNU variant: returns the message
}

inline void Throw(Napi::Env env, int err, const std::string &msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.ThrowAsJavaScriptException();
}

inline std::string MacString(const uint8_t *m) {
  char s[18];
  snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return s;
}

inline bool ParseMac(const std::string &s, uint8_t out[6]) {
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

// exports.name = fn: one line per binding in each file's Exports.
inline void Export(Napi::Env env, Napi::Object exports, const char *name, Napi::Function::Callback fn) {
  exports.Set(name, Napi::Function::New(env, fn, name));
}

// Each file's bindings, added to the module's exports by Init (addon.cc).
void DpExports(Napi::Env env, Napi::Object exports);  // addon_dp.cc: the data path
void TapExports(Napi::Env env, Napi::Object exports); // addon_tap.cc: TAP devices, fds
void ScmExports(Napi::Env env, Napi::Object exports); // addon_scm.cc: fd handover, sd_notify

} // namespace vtepd

#endif
