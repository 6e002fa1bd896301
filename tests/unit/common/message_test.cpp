// CBOR bodies: event round trip, strict validation, hostile nesting.
#include <gtest/gtest.h>

#include "vigil/message.hpp"

using namespace vigil;

namespace {
Event sample() {
  Event e;
  e.id = new_event_id();
  e.type = EventType::task_exit;
  e.ts_ns = 1700000000123456789;
  e.job = 1234;
  e.step = 0;
  e.task = 3;
  e.restart = 1;
  e.node = "n2";
  e.attrs = {{"exit_code", 0}, {"signal", 0}};
  return e;
}
}  // namespace

TEST(Message, EventRoundTrip) {
  Event e = sample();
  auto b = decode_batch(encode_batch({e, e}));
  ASSERT_TRUE(b.ok()) << b.error().what();
  ASSERT_EQ(b->events.size(), 2u);
  const Event& d = b->events[0];
  EXPECT_EQ(d.id, e.id);
  EXPECT_EQ(d.type, e.type);
  EXPECT_EQ(d.ts_ns, e.ts_ns);
  EXPECT_EQ(d.job, 1234u);
  EXPECT_EQ(d.step, 0u);
  EXPECT_EQ(d.task, 3);
  EXPECT_EQ(d.restart, 1u);
  EXPECT_EQ(d.node, "n2");
  EXPECT_EQ(d.attrs["exit_code"], 0);
}

TEST(Message, BadEventIsRejectedAloneRestKept) {
  json bad = event_to_json(sample());
  bad["t"] = 999;
  json good = event_to_json(sample());
  auto b = decode_batch(cbor_encode(json::array({good, bad, good})));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->events.size(), 2u);
  ASSERT_EQ(b->rejected.size(), 1u);
  EXPECT_EQ(b->rejected[0].first, 1u);
  EXPECT_EQ(b->rejected[0].second.code, Errc::bad_kind);
}

TEST(Message, FieldValidation) {
  auto reason = [](json j) {
    auto e = event_from_json(j);
    return e ? std::string("ok") : e.error().message;
  };
  json base = event_to_json(sample());
  EXPECT_EQ(reason(base), "ok");
  json j = base;
  j.erase("id");
  EXPECT_NE(reason(j).find("'id'"), std::string::npos);
  j = base;
  j["job"] = -1;
  EXPECT_NE(reason(j).find("'job'"), std::string::npos);
  j = base;
  j["job"] = 1ull << 33;
  EXPECT_NE(reason(j).find("'job'"), std::string::npos);
  j = base;
  j["node"] = std::string(65, 'n');
  EXPECT_NE(reason(j).find("'node'"), std::string::npos);
  j = base;
  j["surprise"] = 1;
  EXPECT_NE(reason(j).find("unknown field 'surprise'"), std::string::npos);
  j = base;
  j["a"] = json::array();
  EXPECT_NE(reason(j).find("'a'"), std::string::npos);
}

TEST(Message, DeepNestingRefusedWithoutRecursionBlowup) {
  // 100 000 nested one-element arrays: would overflow the stack if unbounded.
  std::string deep(100000, static_cast<char>(0x81));
  deep.push_back(0x00);
  auto d = cbor_decode(deep);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("nesting"), std::string::npos);
}

TEST(Message, MalformedCborRejected) {
  EXPECT_FALSE(cbor_decode(std::string("\x9f", 1)).ok());           // unterminated indefinite array
  EXPECT_FALSE(cbor_decode(std::string("\x85\x01", 2)).ok());       // array promises 5, has 1
  EXPECT_FALSE(cbor_decode(std::string("\xc1\x01", 2)).ok());       // tags are not allowed
  EXPECT_FALSE(cbor_decode(std::string("\xa2\x61k\x01\x61k\x02", 7)).ok());  // duplicate key
  EXPECT_FALSE(decode_batch(cbor_encode(json{{"not", "array"}})).ok());
}

TEST(Message, HelloPayloadStrict) {
  HelloPayload h;
  h.key.fill(9);
  h.role = "plugin";
  h.host = "n1";
  h.pid = 77;
  auto d = decode_hello_payload(encode_hello_payload(h));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->key, h.key);
  EXPECT_EQ(d->role, "plugin");
  json j = cbor_decode(encode_hello_payload(h)).value();
  j["v"] = 2;
  EXPECT_EQ(decode_hello_payload(cbor_encode(j)).error().code, Errc::bad_version);
  j["v"] = 1;
  j["role"] = "root-please";
  EXPECT_FALSE(decode_hello_payload(cbor_encode(j)).ok());
}

TEST(Message, EventTypeNames) {
  for (std::uint16_t i = 1; i <= kMaxEventType; ++i) {
    auto t = static_cast<EventType>(i);
    auto back = event_type_from_name(event_type_name(t));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, t);
  }
  EXPECT_FALSE(event_type_from_name("nope").ok());
}

TEST(Message, DirectEncoderMatchesDomEncoder) {
  Event full = sample();
  Event minimal;
  minimal.id = new_event_id();
  minimal.ts_ns = -5;  // negative integers take CBOR's major type 1
  minimal.job = 0xffffffffu;
  for (const Event& e : {full, minimal}) {
    auto direct = cbor_decode(encode_event(e));
    ASSERT_TRUE(direct.ok()) << direct.error().what();
    EXPECT_EQ(*direct, event_to_json(e));
  }
}
