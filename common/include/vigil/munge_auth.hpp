// munge_auth.hpp — MUNGE credentials: who is on the other end.
//
// A client seals a HelloPayload (with its fresh session key) in a credential;
// munged encrypts it and vouches for the client's uid/gid. vigild decodes it
// through its own munged, which also rejects expired and replayed credentials.
// One credential costs ~70 us, so Vigil uses one per session, not per message.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "vigil/result.hpp"

namespace vigil {

struct MungeIdentity {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  std::string payload;
};

// Not thread-safe: one per thread (a libmunge context is cheap).
class MungeAuth {
 public:
  // socket_path: munged's socket; empty means libmunge's compiled-in default.
  explicit MungeAuth(std::string socket_path = {}, int ttl_seconds = 0);
  Result<std::string> encode(std::string_view payload) const;
  Result<MungeIdentity> decode(std::string_view credential) const;
  const std::string& socket_path() const { return socket_; }

 private:
  std::string socket_;
  int ttl_;
};

}  // namespace vigil
