// crypto.hpp — the few primitives the wire protocol needs, over OpenSSL.
//
// A session key is 32 random bytes carried inside a MUNGE credential (so munged
// encrypts it on the wire); every later frame of the session carries
// HMAC-SHA256(key, header || body). See docs/adr/0002-wire-protocol-and-auth.md.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace vigil {

inline constexpr std::size_t kKeyBytes = 32;
inline constexpr std::size_t kTagBytes = 32;
using KeyBytes = std::array<std::uint8_t, kKeyBytes>;
using Tag = std::array<std::uint8_t, kTagBytes>;

// Cryptographically random bytes (RAND_bytes); aborts if the RNG is broken.
void random_bytes(void* out, std::size_t n);
KeyBytes random_key();

// Lowercase hex SHA-256 of a byte string.
std::string sha256_hex(std::string_view data);

// SHA-256 of a regular file, streamed (1 MiB reads; never the whole file in
// memory). On failure `error` says why (missing, unreadable, not a file).
struct FileDigest {
  std::uint64_t bytes = 0;
  std::string sha256;  // lowercase hex; empty on failure
  std::string error;
};
FileDigest sha256_file(const std::string& path);

// HMAC-SHA256 with the key's inner/outer hash states precomputed once, so a tag
// costs two short SHA-256 finalisations instead of a full keyed setup.
class HmacKey {
 public:
  explicit HmacKey(const KeyBytes& key);
  ~HmacKey();
  HmacKey(const HmacKey&) = delete;
  HmacKey& operator=(const HmacKey&) = delete;

  // Tag over the concatenation a || b (header and body, without copying them).
  Tag tag(std::string_view a, std::string_view b) const;
  // Constant-time check of a received tag.
  bool verify(std::string_view a, std::string_view b, const std::uint8_t* tag) const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace vigil
