// wire.hpp — Vigil wire protocol v1: the frame.
//
// Every ZeroMQ message between plugin, SDK, CLI and vigild is exactly one frame:
//
//   offset size  field
//   0      4     magic "VGIL"
//   4      1     version (kWireVersion)
//   5      1     kind (FrameKind)
//   6      2     flags (must be 0 in v1)
//   8      4     body length in bytes (<= kMaxBody)
//   12     4     reserved (must be 0 in v1)
//   16     8     session id (0 in HELLO)
//   24     8     sequence number (strictly increasing per session, client side)
//   32     n     body (CBOR, see message.hpp)
//   32+n   32    HMAC-SHA256(session key, header || body)   — every kind but HELLO/ERROR
//
// All integers little-endian. Decoding is strict: any size mismatch, non-zero
// reserved field, unknown kind or version is rejected with a reason.
// docs/adr/0002-wire-protocol-and-auth.md records why.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vigil/crypto.hpp"
#include "vigil/result.hpp"

namespace vigil {

inline constexpr std::uint8_t kWireVersion = 1;
inline constexpr std::size_t kHeaderBytes = 32;
// 1 MiB bounds one frame: ~10 000 typical 100-byte events, or one large array
// snapshot chunk; larger payloads are split by the sender.
inline constexpr std::uint32_t kMaxBody = 1u << 20;
inline constexpr std::size_t kMaxFrame = kHeaderBytes + kMaxBody + kTagBytes;

enum class FrameKind : std::uint8_t {
  hello = 1,    // client -> server: MUNGE credential carrying the session key
  welcome = 2,  // server -> client: session id (tagged: proves the server read the key)
  batch = 3,    // client -> server: events
  ack = 4,      // server -> client: events durably stored
  request = 5,  // client -> server: a query or command
  reply = 6,    // server -> client
  error = 7,    // server -> client: untagged, advisory (e.g. unknown session)
};

const char* frame_kind_name(FrameKind k) noexcept;
bool frame_is_tagged(FrameKind k) noexcept;

struct FrameHeader {
  std::uint8_t version = kWireVersion;
  FrameKind kind = FrameKind::error;
  std::uint64_t session = 0;
  std::uint64_t seq = 0;
};

// A decoded frame that points into the caller's buffer (no copy).
struct FrameView {
  FrameHeader header;
  std::string_view header_bytes;  // the 32 raw header bytes (tag input)
  std::string_view body;
  const std::uint8_t* tag = nullptr;  // kTagBytes, or null for untagged kinds
};

// Build a frame; tagged kinds need a key.
std::string encode_frame(FrameKind kind, std::uint64_t session, std::uint64_t seq,
                         std::string_view body, const HmacKey* key);

// Parse and validate structure (not the tag: the session key is looked up by the
// caller from header.session, then verify_frame()).
Result<FrameView> decode_frame(std::string_view bytes);
Status verify_frame(const FrameView& f, const HmacKey& key);

}  // namespace vigil
