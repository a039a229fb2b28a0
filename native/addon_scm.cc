// fd handover (SCM_RIGHTS) for a takeover restart, and systemd notify: scmListen,
// scmAccept, scmSend, sdNotify (native/scm.c).
#include "addon.h"

#include "scm.h"

namespace vtepd {
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
  Export(env, exports, "scmListen", ScmListen);
  Export(env, exports, "scmAccept", ScmAccept);
  Export(env, exports, "scmSend", ScmSend);
  Export(env, exports, "sdNotify", SdNotify);
}

} // namespace vtepd
