// Frame encoding/decoding: round trips and every structural rejection.
#include <gtest/gtest.h>

#include "vigil/wire.hpp"

using namespace vigil;

namespace {
KeyBytes key_of(std::uint8_t b) {
  KeyBytes k;
  k.fill(b);
  return k;
}
}  // namespace

TEST(Wire, RoundTripTagged) {
  HmacKey key(key_of(7));
  std::string f = encode_frame(FrameKind::batch, 42, 9, "hello body", &key);
  ASSERT_EQ(f.size(), kHeaderBytes + 10 + kTagBytes);
  auto d = decode_frame(f);
  ASSERT_TRUE(d.ok()) << d.error().what();
  EXPECT_EQ(d->header.kind, FrameKind::batch);
  EXPECT_EQ(d->header.session, 42u);
  EXPECT_EQ(d->header.seq, 9u);
  EXPECT_EQ(d->body, "hello body");
  EXPECT_TRUE(verify_frame(*d, key).ok());
}

TEST(Wire, WrongKeyIsBadTag) {
  HmacKey key(key_of(1)), other(key_of(2));
  std::string f = encode_frame(FrameKind::request, 1, 1, "x", &key);
  auto d = decode_frame(f);
  ASSERT_TRUE(d.ok());
  auto v = verify_frame(*d, other);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, Errc::bad_tag);
}

TEST(Wire, FlippedBodyBitIsBadTag) {
  HmacKey key(key_of(1));
  std::string f = encode_frame(FrameKind::batch, 1, 1, "payload", &key);
  f[kHeaderBytes + 2] ^= 0x01;
  auto d = decode_frame(f);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(verify_frame(*d, key).error().code, Errc::bad_tag);
}

TEST(Wire, UntaggedKindsCarryNoTag) {
  std::string f = encode_frame(FrameKind::hello, 0, 1, "cred", nullptr);
  EXPECT_EQ(f.size(), kHeaderBytes + 4);
  auto d = decode_frame(f);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->tag, nullptr);
}

struct BadCase {
  const char* name;
  Errc code;
};

TEST(Wire, RejectsStructuralDamage) {
  HmacKey key(key_of(3));
  const std::string good = encode_frame(FrameKind::batch, 5, 1, "abc", &key);
  auto expect = [](std::string bytes, Errc code, const char* what) {
    auto d = decode_frame(bytes);
    ASSERT_FALSE(d.ok()) << what;
    EXPECT_EQ(d.error().code, code) << what << ": " << d.error().what();
    EXPECT_FALSE(d.error().message.empty());
  };
  expect("", Errc::truncated, "empty");
  expect(good.substr(0, 10), Errc::truncated, "short header");
  expect(good.substr(0, good.size() - 1), Errc::truncated, "missing tag byte");
  expect(good + "x", Errc::malformed, "trailing byte");
  std::string m = good;
  m[0] = 'X';
  expect(m, Errc::malformed, "magic");
  m = good;
  m[4] = 2;
  expect(m, Errc::bad_version, "version 2");
  m = good;
  m[5] = 99;
  expect(m, Errc::bad_kind, "kind 99");
  m = good;
  m[6] = 1;
  expect(m, Errc::malformed, "flags");
  m = good;
  m[12] = 1;
  expect(m, Errc::malformed, "reserved");
  m = good;
  m[8] = m[9] = m[10] = m[11] = static_cast<char>(0xff);
  expect(m, Errc::too_large, "body length 4 GiB");
  expect(std::string(kMaxFrame + 1, 'V'), Errc::too_large, "oversized frame");
  std::string hello = encode_frame(FrameKind::hello, 0, 1, "c", nullptr);
  hello[16] = 1;
  expect(hello, Errc::malformed, "hello with a session");
}

TEST(Wire, MaxBodyAccepted) {
  HmacKey key(key_of(4));
  std::string body(kMaxBody, 'a');
  auto d = decode_frame(encode_frame(FrameKind::batch, 1, 1, body, &key));
  ASSERT_TRUE(d.ok()) << d.error().what();
  EXPECT_EQ(d->body.size(), kMaxBody);
}
