// wire.cpp — frame encoding and strict decoding (see wire.hpp for the layout).
#include "vigil/wire.hpp"

#include <cstring>

namespace vigil {
namespace {

constexpr char kMagic[4] = {'V', 'G', 'I', 'L'};

void put_u32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_u64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}
std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

}  // namespace

const char* frame_kind_name(FrameKind k) noexcept {
  switch (k) {
    case FrameKind::hello: return "hello";
    case FrameKind::welcome: return "welcome";
    case FrameKind::batch: return "batch";
    case FrameKind::ack: return "ack";
    case FrameKind::request: return "request";
    case FrameKind::reply: return "reply";
    case FrameKind::error: return "error";
  }
  return "unknown";
}

bool frame_is_tagged(FrameKind k) noexcept {
  return k != FrameKind::hello && k != FrameKind::error;
}

std::string encode_frame(FrameKind kind, std::uint64_t session, std::uint64_t seq,
                         std::string_view body, const HmacKey* key) {
  const bool tagged = frame_is_tagged(kind);
  std::string out(kHeaderBytes + body.size() + (tagged ? kTagBytes : 0), '\0');
  char* p = out.data();
  std::memcpy(p, kMagic, 4);
  p[4] = static_cast<char>(kWireVersion);
  p[5] = static_cast<char>(kind);
  // p[6..7] flags = 0, p[12..15] reserved = 0
  put_u32(p + 8, static_cast<std::uint32_t>(body.size()));
  put_u64(p + 16, session);
  put_u64(p + 24, seq);
  if (!body.empty()) std::memcpy(p + kHeaderBytes, body.data(), body.size());
  if (tagged) {
    // A tagged kind without a key is a programming error, never input-driven.
    if (key == nullptr) std::abort();
    Tag t = key->tag(std::string_view(p, kHeaderBytes), body);
    std::memcpy(p + kHeaderBytes + body.size(), t.data(), kTagBytes);
  }
  return out;
}

Result<FrameView> decode_frame(std::string_view b) {
  if (b.size() < kHeaderBytes)
    return make_error(Errc::truncated, "frame of " + std::to_string(b.size()) +
                                           " bytes is shorter than the 32-byte header");
  if (b.size() > kMaxFrame)
    return make_error(Errc::too_large, "frame of " + std::to_string(b.size()) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(kMaxFrame));
  const char* p = b.data();
  if (std::memcmp(p, kMagic, 4) != 0) return make_error(Errc::malformed, "bad magic (not a Vigil frame)");
  const auto version = static_cast<std::uint8_t>(p[4]);
  if (version != kWireVersion)
    return make_error(Errc::bad_version, "wire version " + std::to_string(version) +
                                             " is not supported (this build speaks " +
                                             std::to_string(kWireVersion) + ")");
  const auto kind_raw = static_cast<std::uint8_t>(p[5]);
  if (kind_raw < 1 || kind_raw > 7)
    return make_error(Errc::bad_kind, "unknown frame kind " + std::to_string(kind_raw));
  if (p[6] != 0 || p[7] != 0) return make_error(Errc::malformed, "non-zero flags in a v1 frame");
  if (get_u32(p + 12) != 0) return make_error(Errc::malformed, "non-zero reserved field in a v1 frame");
  const std::uint32_t body_len = get_u32(p + 8);
  if (body_len > kMaxBody)
    return make_error(Errc::too_large, "body of " + std::to_string(body_len) +
                                           " bytes exceeds the limit of " + std::to_string(kMaxBody));
  FrameView f;
  f.header.version = version;
  f.header.kind = static_cast<FrameKind>(kind_raw);
  f.header.session = get_u64(p + 16);
  f.header.seq = get_u64(p + 24);
  const bool tagged = frame_is_tagged(f.header.kind);
  const std::size_t expect = kHeaderBytes + body_len + (tagged ? kTagBytes : 0);
  if (b.size() < expect)
    return make_error(Errc::truncated, "frame is " + std::to_string(b.size()) + " bytes, header promises " +
                                           std::to_string(expect));
  if (b.size() > expect)
    return make_error(Errc::malformed, "frame has " + std::to_string(b.size() - expect) +
                                           " trailing bytes");
  f.header_bytes = b.substr(0, kHeaderBytes);
  f.body = b.substr(kHeaderBytes, body_len);
  if (tagged) f.tag = reinterpret_cast<const std::uint8_t*>(p + kHeaderBytes + body_len);
  if (f.header.kind == FrameKind::hello && f.header.session != 0)
    return make_error(Errc::malformed, "hello frame must carry session 0");
  return f;
}

Status verify_frame(const FrameView& f, const HmacKey& key) {
  if (f.tag == nullptr) return make_error(Errc::unauthenticated, "frame kind carries no tag");
  if (!key.verify(f.header_bytes, f.body, f.tag))
    return make_error(Errc::bad_tag, "HMAC mismatch: frame forged or corrupted");
  return ok_status();
}

}  // namespace vigil
