// munge_auth.cpp — libmunge calls mapped onto Vigil error codes.
#include "vigil/munge_auth.hpp"

#include <munge.h>

#include <cstdlib>
#include <memory>

namespace vigil {
namespace {

struct CtxDeleter {
  void operator()(munge_ctx_t c) const { munge_ctx_destroy(c); }
};
using Ctx = std::unique_ptr<std::remove_pointer_t<munge_ctx_t>, CtxDeleter>;

Result<Ctx> make_ctx(const std::string& socket, int ttl) {
  Ctx ctx(munge_ctx_create());
  if (!ctx) return make_error(Errc::internal, "munge_ctx_create failed (out of memory)");
  if (!socket.empty() && munge_ctx_set(ctx.get(), MUNGE_OPT_SOCKET, socket.c_str()) != EMUNGE_SUCCESS)
    return make_error(Errc::internal, "cannot set MUNGE socket " + socket);
  if (ttl > 0 && munge_ctx_set(ctx.get(), MUNGE_OPT_TTL, ttl) != EMUNGE_SUCCESS)
    return make_error(Errc::internal, "cannot set MUNGE ttl");
  return ctx;
}

Errc map_decode_error(munge_err_t e) {
  switch (e) {
    case EMUNGE_CRED_EXPIRED:
    case EMUNGE_CRED_REWOUND: return Errc::expired;
    case EMUNGE_CRED_REPLAYED: return Errc::replayed;
    case EMUNGE_SOCKET:
    case EMUNGE_TIMEOUT: return Errc::unavailable;
    case EMUNGE_BAD_ARG:
    case EMUNGE_BAD_LENGTH:
    case EMUNGE_CRED_INVALID:
    case EMUNGE_BAD_CRED:
    case EMUNGE_CRED_UNAUTHORIZED:
    default: return Errc::unauthenticated;
  }
}

}  // namespace

MungeAuth::MungeAuth(std::string socket_path, int ttl_seconds)
    : socket_(std::move(socket_path)), ttl_(ttl_seconds) {}

Result<std::string> MungeAuth::encode(std::string_view payload) const {
  auto ctx = make_ctx(socket_, ttl_);
  if (!ctx) return ctx.error();
  char* cred = nullptr;
  munge_err_t e = munge_encode(&cred, ctx->get(), payload.data(), static_cast<int>(payload.size()));
  if (e != EMUNGE_SUCCESS) {
    std::string why = munge_ctx_strerror(ctx->get()) ? munge_ctx_strerror(ctx->get()) : munge_strerror(e);
    std::free(cred);
    return make_error(e == EMUNGE_SOCKET ? Errc::unavailable : Errc::internal, "munge_encode: " + why);
  }
  std::string out(cred);
  std::free(cred);
  return out;
}

Result<MungeIdentity> MungeAuth::decode(std::string_view credential) const {
  auto ctx = make_ctx(socket_, 0);
  if (!ctx) return ctx.error();
  std::string cred(credential);  // libmunge wants a NUL-terminated string
  void* buf = nullptr;
  int len = 0;
  MungeIdentity id;
  munge_err_t e = munge_decode(cred.c_str(), ctx->get(), &buf, &len, &id.uid, &id.gid);
  if (e != EMUNGE_SUCCESS) {
    std::string why = munge_ctx_strerror(ctx->get()) ? munge_ctx_strerror(ctx->get()) : munge_strerror(e);
    std::free(buf);
    return make_error(map_decode_error(e), "MUNGE credential rejected: " + why);
  }
  if (buf != nullptr && len > 0) id.payload.assign(static_cast<const char*>(buf), static_cast<std::size_t>(len));
  std::free(buf);
  return id;
}

}  // namespace vigil
