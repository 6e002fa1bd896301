// CBOR bodies: event round trip, strict validation, hostile nesting.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

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

// ---------------------------------------------------------------------------
// decode_batch reads a body in one pass, straight into Events. It must give
// exactly what the DOM path gives: cbor_decode, then event_from_json on each
// element (the pre-2026-11 implementation, and still public API).
namespace {

DecodedBatch via_dom(const std::string& body) {
  DecodedBatch out;
  auto doc = cbor_decode(body);
  EXPECT_TRUE(doc.ok()) << doc.error().what();
  if (!doc || !doc->is_array()) return out;
  for (std::size_t i = 0; i < doc->size(); ++i) {
    auto e = event_from_json((*doc)[i]);
    if (e) out.events.push_back(std::move(*e));
    else out.rejected.emplace_back(i, e.error());
  }
  return out;
}

void expect_same_as_dom(const std::string& body) {
  auto fast = decode_batch(body);
  ASSERT_TRUE(fast.ok()) << fast.error().what();
  const DecodedBatch ref = via_dom(body);
  ASSERT_EQ(fast->events.size(), ref.events.size());
  for (std::size_t i = 0; i < ref.events.size(); ++i) {
    const Event &a = fast->events[i], &b = ref.events[i];
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.ts_ns, b.ts_ns);
    EXPECT_EQ(a.job, b.job);
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(a.task, b.task);
    EXPECT_EQ(a.restart, b.restart);
    EXPECT_EQ(a.node, b.node);
    EXPECT_EQ(a.attrs.dump(), b.attrs.dump());
  }
  ASSERT_EQ(fast->rejected.size(), ref.rejected.size());
  for (std::size_t i = 0; i < ref.rejected.size(); ++i) {
    EXPECT_EQ(fast->rejected[i].first, ref.rejected[i].first);
    EXPECT_EQ(fast->rejected[i].second.code, ref.rejected[i].second.code);
    EXPECT_EQ(fast->rejected[i].second.message, ref.rejected[i].second.message);
  }
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

}  // namespace

TEST(Message, OnePassDecodeMatchesDomPath) {
  const json good = event_to_json(sample());
  std::vector<json> variants;
  auto with = [&](const char* k, json v) {
    json j = good;
    j[k] = std::move(v);
    variants.push_back(j);
  };
  auto without = [&](const char* k) {
    json j = good;
    j.erase(k);
    variants.push_back(j);
  };
  variants.push_back(good);
  with("t", 0);
  with("t", kMaxEventType + 1);
  with("t", -1);
  with("t", 1.0);
  with("ts", -42);
  with("ts", std::numeric_limits<std::int64_t>::min());
  with("ts", 0xffffffffffffffffull);  // read as json's get<int64_t>() reads it
  with("ts", "soon");
  with("job", 0xffffffffull);
  with("job", 0x100000000ull);
  with("step", -1);
  with("task", 0x7fffffff);
  with("task", 0x80000000ull);
  with("task", -3);
  with("rc", true);
  with("node", std::string(64, 'n'));
  with("node", std::string(65, 'n'));
  with("node", 5);
  with("id", json::binary({1, 2, 3}));
  with("id", "0123456789abcdef");
  with("a", json::array({1}));
  with("a", json::object());
  json deep = json::object();
  deep["deep"]["er"]["est"] = json::array({1.5, -2, nullptr, false, "x", json::binary({9})});
  with("a", deep);
  with("zz", 1);
  with("", 1);
  without("id");
  without("t");
  without("ts");
  without("job");
  without("a");
  without("node");
  {  // several wrong fields: the first in key order is the one reported
    json j = good;
    j["task"] = -1;
    j["job"] = "x";
    j["unknown"] = 1;
    j["id"] = 7;
    variants.push_back(j);
    j.erase("id");
    variants.push_back(j);
    j = good;
    j.erase("ts");
    j["t"] = 99;
    variants.push_back(j);
  }
  json arr = json::array();
  for (const json& v : variants) arr.push_back(v);
  arr.push_back(1);
  arr.push_back("not an event");
  arr.push_back(json::array({good}));
  arr.push_back(nullptr);
  expect_same_as_dom(cbor_encode(arr));
  for (const json& v : variants) expect_same_as_dom(cbor_encode(json::array({v})));
  expect_same_as_dom(cbor_encode(json::array()));
}

TEST(Message, OnePassDecodeReadsIndefiniteLengthsAndAllFloatWidths) {
  // [_ {_ "id": (_ h'00..07', h'08..0f'), "t": 8, "ts": 1, "job": 2,
  //       "node": (_ "n", "1"), "a": {_ "h": half 1.5, "f": single 0.25, "x": [_ 1]}} ]
  std::string id1, id2;
  for (int i = 0; i < 8; ++i) id1.push_back(static_cast<char>(i)), id2.push_back(static_cast<char>(8 + i));
  std::string b = bytes({0x9f, 0xbf, 0x62, 'i', 'd', 0x5f, 0x48}) + id1 + bytes({0x48}) + id2 +
                  bytes({0xff, 0x61, 't', 0x08, 0x62, 't', 's', 0x01, 0x63, 'j', 'o', 'b', 0x02, 0x64, 'n', 'o',
                         'd', 'e', 0x7f, 0x61, 'n', 0x61, '1', 0xff, 0x61, 'a', 0xbf, 0x61, 'h', 0xf9, 0x3e, 0x00,
                         0x61, 'f', 0xfa, 0x3e, 0x80, 0x00, 0x00, 0x61, 'x', 0x9f, 0x01, 0xff, 0xff, 0xff, 0xff});
  expect_same_as_dom(b);
  auto d = decode_batch(b);
  ASSERT_TRUE(d.ok()) << d.error().what();
  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_EQ(d->events[0].id[15], 15);
  EXPECT_EQ(d->events[0].node, "n1");
  EXPECT_EQ(d->events[0].attrs["h"], 1.5);
  EXPECT_EQ(d->events[0].attrs["f"], 0.25);
}

TEST(Message, StructuralErrorsRefuseTheWholeBatch) {
  const std::string good = encode_event(sample());
  auto refused = [](const std::string& body) {
    auto d = decode_batch(body);
    if (d.ok()) return std::string("accepted");
    EXPECT_EQ(d.error().code, Errc::malformed) << d.error().message;
    return d.error().message;
  };
  // Duplicate keys: a known field, an unknown one, inside attrs.
  EXPECT_NE(refused(bytes({0x82}) + good + bytes({0xa2, 0x61, 't', 0x08, 0x61, 't', 0x08})).find("duplicate"),
            std::string::npos);
  EXPECT_NE(refused(bytes({0x81, 0xa2, 0x61, 'q', 0x01, 0x61, 'q', 0x02})).find("duplicate"), std::string::npos);
  EXPECT_NE(refused(bytes({0x81, 0xa1, 0x61, 'a', 0xa2, 0x61, 'k', 0x01, 0x61, 'k', 0x01})).find("duplicate"),
            std::string::npos);
  // A tag anywhere, even in an event that would be rejected anyway.
  EXPECT_NE(refused(bytes({0x82}) + good + bytes({0xa1, 0x61, 'z', 0xc1, 0x01})).find("tags"), std::string::npos);
  // Truncated, trailing bytes, a break outside an indefinite container.
  EXPECT_NE(refused(std::string(bytes({0x81}) + good).substr(0, good.size())), "accepted");
  EXPECT_NE(refused(bytes({0x81}) + good + bytes({0x00})).find("trailing"), std::string::npos);
  EXPECT_NE(refused(bytes({0x81, 0xff})), "accepted");
  // Simple values other than false/true/null, and undefined.
  EXPECT_NE(refused(bytes({0x81, 0xa1, 0x61, 'z', 0xf7})), "accepted");
  EXPECT_NE(refused(bytes({0x81, 0xa1, 0x61, 'z', 0xf8, 0x20})), "accepted");
  // Non-string map keys.
  EXPECT_NE(refused(bytes({0x81, 0xa1, 0x01, 0x01})), "accepted");
  // Nesting: attrs may hold 5 more levels (batch, event, attrs = 3 of 8), not 6.
  std::string ok_deep = bytes({0x81, 0xa1, 0x61, 'a', 0xa1, 0x61, 'x', 0x81, 0x81, 0x81, 0x81, 0x81, 0x00});
  EXPECT_TRUE(decode_batch(ok_deep).ok());
  std::string too_deep = bytes({0x81, 0xa1, 0x61, 'a', 0xa1, 0x61, 'x', 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x00});
  EXPECT_NE(refused(too_deep).find("nesting"), std::string::npos);
  // A length the input cannot hold is refused before anything is allocated for it.
  EXPECT_NE(refused(bytes({0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00})), "accepted");
  EXPECT_NE(refused(bytes({0x81, 0xa1, 0x61, 'a', 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
            "accepted");
}

TEST(Message, BatchOverTheLimitIsTooLargeUnlessBroken) {
  const std::string ev = encode_event(sample());
  std::string body = bytes({0x99, 0x27, 0x11});  // 10001 events
  for (int i = 0; i < 10001; ++i) body += ev;
  auto d = decode_batch(body);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, Errc::too_large);
  body.back() = static_cast<char>(0xc1);  // a tag: broken first, too large second
  d = decode_batch(body);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, Errc::malformed);
}

// The previous reader followed nested indefinite-length string headers
// (0x7f 0x7f ...) by recursion, one level per byte: 50 KB overflowed the stack,
// and HELLO bodies are read before anyone is authenticated.
TEST(Message, NestedIndefiniteStringChunksAreRefusedWithoutRecursion) {
  for (char c : {'\x7f', '\x5f'}) {
    const std::string hostile(1 << 20, c);
    EXPECT_FALSE(cbor_decode(hostile).ok());
    EXPECT_FALSE(decode_batch(hostile).ok());
    EXPECT_FALSE(decode_hello_payload(hostile).ok());
    EXPECT_FALSE(decode_ack(hostile).ok());
    EXPECT_FALSE(decode_batch(bytes({0x81, 0xa1, 0x61, 'a', 0xa1, 0x61, 'x'}) + hostile).ok());
  }
  // One level of chunks is valid CBOR and is read.
  auto s = cbor_decode(bytes({0x7f, 0x62, 'a', 'b', 0x60, 0x61, 'c', 0xff}));
  ASSERT_TRUE(s.ok()) << s.error().what();
  EXPECT_EQ(*s, "abc");
  auto b = cbor_decode(bytes({0x5f, 0x41, 0x01, 0x42, 0x02, 0x03, 0xff}));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, json::binary({1, 2, 3}));
  // Chunks of another type, or indefinite chunks, are not.
  EXPECT_FALSE(cbor_decode(bytes({0x7f, 0x41, 'a', 0xff})).ok());
  EXPECT_FALSE(cbor_decode(bytes({0x7f, 0x7f, 0xff, 0xff})).ok());
}

TEST(Message, IntegersOutsideInt64AreRefused) {
  EXPECT_FALSE(cbor_decode(bytes({0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0})).ok());  // -2^63 - 1
  auto min = cbor_decode(bytes({0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
  ASSERT_TRUE(min.ok());
  EXPECT_EQ(min->get<std::int64_t>(), std::numeric_limits<std::int64_t>::min());
  auto max = cbor_decode(bytes({0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(max->get<std::uint64_t>(), std::numeric_limits<std::uint64_t>::max());
}

TEST(Message, AppendJsonTextIsDumpText) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<json> values = {
      nullptr, true, false, 0, -1, std::numeric_limits<std::int64_t>::min(),
      std::numeric_limits<std::uint64_t>::max(), 0.1, -0.0, 3.0, 1e300, 5e-324, 123456789.125, inf, -inf,
      std::nan(""), "", "plain", "quote\" backslash\\ slash/ \b\f\n\r\t \x01\x1f\x7f", "caf\xc3\xa9 \xf0\x9f\x98\x80",
      "bad \xff utf8", "overlong \xc0\xaf", "surrogate \xed\xa0\x80", "cut \xe2\x82", std::string("nul\0in", 6),
      json::binary({1, 2, 255}), json::binary({}, 7), json::array(), json::object(),
      {{"b", 1}, {"a", {1, 2.5, "x", nullptr}}, {"\xff key", {{"deep", json::object()}}}},
      {{"tasks", 1}, {"cpu_s", 12.0}, {"rss_bytes", 1 << 20}, {"interval_s", 5}}};
  for (const json& v : values) {
    std::string out = "prefix:";
    append_json_text(out, v);
    EXPECT_EQ(out, "prefix:" + v.dump(-1, ' ', false, json::error_handler_t::replace)) << v.dump(-1, ' ', true, json::error_handler_t::replace);
  }
}

TEST(EventIds, TimeThenRandomBigEndianSoLaterIdsSortAfter) {
  const EventId a = make_event_id(0x0102030405060708ull, 0x1112131415161718ull);
  EXPECT_EQ(event_id_hex(a), "01020304050607081112131415161718");
  EXPECT_LT(make_event_id(5, ~0ull), make_event_id(6, 0));  // the time part orders ids, as the store's index wants
  const EventId b = new_event_id(), c = new_event_id();
  EXPECT_NE(b, c);
}
