// result.hpp — a small expected-style return type for hot paths and C boundaries.
//
// C++20 has no std::expected; this is the minimal subset Vigil needs. Errors carry
// a stable code (counted in metrics, matched in tests) and a human message.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vigil {

enum class Errc {
  ok = 0,
  malformed,        // bytes do not parse as the declared format
  truncated,        // fewer bytes than the header promises
  too_large,        // over an explicit size limit
  bad_version,      // a version this build does not speak
  bad_kind,         // unknown frame kind / event type
  bad_tag,          // HMAC mismatch: forged or corrupted frame
  replayed,         // sequence number or credential seen before
  expired,          // credential or session past its lifetime
  unauthenticated,  // no or invalid credential
  unknown_session,  // session id not known to the server (e.g. after restart)
  denied,           // authenticated but not allowed
  unavailable,      // peer down, timeout, daemon not reachable
  io,               // local I/O failure (disk, socket)
  rate_limited,     // a sender over its share: slow down and resend
  superseded,       // from an attempt vigild has already replaced (ADR 0022): drop, do not resend
  internal,         // a bug: should not happen
};

const char* errc_name(Errc c) noexcept;
// The code whose name starts `text` (as in Error::what(): "name: message"), or internal.
Errc errc_from_text(std::string_view text) noexcept;

struct Error {
  Errc code = Errc::internal;
  std::string message;
  std::string what() const { return std::string(errc_name(code)) + ": " + message; }
};

template <class T>
class Result {
 public:
  Result(T v) : v_(std::move(v)) {}                 // NOLINT(implicit)
  Result(Error e) : v_(std::move(e)) {}             // NOLINT(implicit)
  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Unit{}; }
inline Error make_error(Errc c, std::string msg) { return Error{c, std::move(msg)}; }

}  // namespace vigil
