// result.cpp — stable names for error codes (used in logs, metrics labels, tests).
#include "vigil/result.hpp"

namespace vigil {

const char* errc_name(Errc c) noexcept {
  switch (c) {
    case Errc::ok: return "ok";
    case Errc::malformed: return "malformed";
    case Errc::truncated: return "truncated";
    case Errc::too_large: return "too_large";
    case Errc::bad_version: return "bad_version";
    case Errc::bad_kind: return "bad_kind";
    case Errc::bad_tag: return "bad_tag";
    case Errc::replayed: return "replayed";
    case Errc::expired: return "expired";
    case Errc::unauthenticated: return "unauthenticated";
    case Errc::unknown_session: return "unknown_session";
    case Errc::denied: return "denied";
    case Errc::unavailable: return "unavailable";
    case Errc::io: return "io";
    case Errc::rate_limited: return "rate_limited";
    case Errc::superseded: return "superseded";
    case Errc::internal: return "internal";
  }
  return "internal";
}

Errc errc_from_text(std::string_view text) noexcept {
  const std::string_view name = text.substr(0, text.find(':'));
  for (int i = 0; i <= static_cast<int>(Errc::internal); ++i)
    if (name == errc_name(static_cast<Errc>(i))) return static_cast<Errc>(i);
  return Errc::internal;
}

}  // namespace vigil
