// message.cpp — events, ids, envelopes and replies (see message.hpp); the
// strict CBOR reader is cbor_in.hpp, the batch decoder message_decode.cpp, the
// JSON text writer json_text.cpp.
#include "vigil/message.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <optional>

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

#include "cbor_in.hpp"

namespace vigil {
using detail::bad;
using detail::field;

std::string cbor_encode(const json& j) {
  std::string out;
  json::to_cbor(j, out);
  return out;
}

const char* event_type_name(EventType t) noexcept {
  switch (t) {
    case EventType::submit: return "submit";
    case EventType::job_start: return "job_start";
    case EventType::step_start: return "step_start";
    case EventType::task_start: return "task_start";
    case EventType::task_exit: return "task_exit";
    case EventType::step_end: return "step_end";
    case EventType::job_end: return "job_end";
    case EventType::heartbeat: return "heartbeat";
    case EventType::checkpoint_signal: return "checkpoint_signal";
    case EventType::result: return "result";
    case EventType::checkpoint: return "checkpoint";
    case EventType::step_silent: return "step_silent";
    case EventType::node_lost: return "node_lost";
    case EventType::node_recovered: return "node_recovered";
    case EventType::rule_fired: return "rule_fired";
    case EventType::results_final: return "results_final";
    case EventType::stop: return "stop";
    case EventType::checkpoint_verified: return "checkpoint_verified";
    case EventType::recovery: return "recovery";
    case EventType::checkpoint_skipped: return "checkpoint_skipped";
    case EventType::output: return "output";
    case EventType::checkpoint_requested: return "checkpoint_requested";
    case EventType::checkpoint_pruned: return "checkpoint_pruned";
    case EventType::output_registered: return "output_registered";
  }
  return "unknown";
}

Result<EventType> event_type_from_name(std::string_view name) {
  for (std::uint16_t i = 1; i <= kMaxEventType; ++i)
    if (name == event_type_name(static_cast<EventType>(i))) return static_cast<EventType>(i);
  return make_error(Errc::bad_kind, "unknown event type '" + std::string(name) + "'");
}

// 8 bytes of wall-clock time (ns, big-endian) then 8 random bytes: unique
// without coordination (64 random bits per nanosecond), and roughly ordered, so
// vigild's UNIQUE index on ids is appended to rather than written at random
// pages (measured: ~4x ingest, docs/research/ingest-bench.md).
EventId make_event_id(std::uint64_t ns, std::uint64_t random) {
  EventId id;
  for (int i = 0; i < 8; ++i) {
    id[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ns >> (56 - 8 * i));
    id[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(random >> (56 - 8 * i));
  }
  return id;
}

EventId new_event_id() {
  const auto ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  // getrandom(2), not OpenSSL: the SPANK plugin links this file without libcrypto.
  std::uint64_t random = 0;
  auto* bytes = reinterpret_cast<unsigned char*>(&random);
  std::size_t got = 0;
  while (got < sizeof random) {
    const ssize_t n = getrandom(bytes + got, sizeof random - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
    else if (errno != EINTR) std::abort();  // no kernel randomness: nothing safe to do
  }
  return make_event_id(ns, random);
}

std::string event_id_hex(const EventId& id) {
  static const char* hex = "0123456789abcdef";
  std::string s(32, '0');
  for (std::size_t i = 0; i < id.size(); ++i) {
    s[2 * i] = hex[id[i] >> 4];
    s[2 * i + 1] = hex[id[i] & 15];
  }
  return s;
}

json event_to_json(const Event& e) {
  json j = {{"id", json::binary(std::vector<std::uint8_t>(e.id.begin(), e.id.end()))},
            {"t", static_cast<std::uint16_t>(e.type)},
            {"ts", e.ts_ns},
            {"job", e.job}};
  if (e.step != kNoStep) j["step"] = e.step;
  if (e.task >= 0) j["task"] = e.task;
  if (e.restart != 0) j["rc"] = e.restart;
  if (!e.node.empty()) j["node"] = e.node;
  if (!e.attrs.empty()) j["a"] = e.attrs;
  return j;
}

Result<Event> event_from_json(json j) {
  if (!j.is_object()) return bad("event is not a map");
  Event e;
  bool have_id = false, have_t = false, have_ts = false, have_job = false;
  auto u32 = [](const json& v) { return v.is_number_unsigned() && v.get<std::uint64_t>() <= 0xffffffffu; };
  // One pass over the fields: unknown fields are errors (strict v1).
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    json& v = *it;
    if (k == "id") {
      if (!v.is_binary() || v.get_binary().size() != e.id.size()) return bad("event field 'id' must be 16 bytes");
      std::memcpy(e.id.data(), v.get_binary().data(), e.id.size());
      have_id = true;
    } else if (k == "t") {
      if (!v.is_number_unsigned()) return bad("event field 't' must be an unsigned integer");
      const auto tv = v.get<std::uint64_t>();
      if (tv < 1 || tv > kMaxEventType) return make_error(Errc::bad_kind, "unknown event type " + std::to_string(tv));
      e.type = static_cast<EventType>(tv);
      have_t = true;
    } else if (k == "ts") {
      if (!v.is_number_integer()) return bad("event field 'ts' must be an integer");
      e.ts_ns = v.get<std::int64_t>();
      have_ts = true;
    } else if (k == "job") {
      if (!u32(v)) return bad("event field 'job' must be a 32-bit unsigned integer");
      e.job = v.get<std::uint32_t>();
      have_job = true;
    } else if (k == "step") {
      if (!u32(v)) return bad("event field 'step' must be a 32-bit unsigned integer");
      e.step = v.get<std::uint32_t>();
    } else if (k == "task") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 0x7fffffff)
        return bad("event field 'task' must be a non-negative 32-bit integer");
      e.task = v.get<std::int32_t>();
    } else if (k == "rc") {
      if (!u32(v)) return bad("event field 'rc' must be a 32-bit unsigned integer");
      e.restart = v.get<std::uint32_t>();
    } else if (k == "node") {
      if (!v.is_string() || v.get_ref<const std::string&>().size() > kMaxNodeName)
        return bad("event field 'node' must be a string of at most 64 bytes");
      e.node = v.get<std::string>();
    } else if (k == "a") {
      if (!v.is_object()) return bad("event field 'a' must be a map");
      e.attrs = std::move(v);
    } else {
      return bad("event has unknown field '" + k + "'");
    }
  }
  if (!have_id) return bad("event field 'id' must be 16 bytes");
  if (!have_t) return bad("event field 't' must be an unsigned integer");
  if (!have_ts) return bad("event field 'ts' must be an integer");
  if (!have_job) return bad("event field 'job' must be a 32-bit unsigned integer");
  return e;
}

namespace {

// Minimal CBOR writer for the event envelope: the hot path of every sender.
// Writing the fixed fields directly avoids building a json DOM per event; the
// free-form attrs map still goes through nlohmann's encoder.
void cbor_head(std::string& out, std::uint8_t major, std::uint64_t v) {
  const auto m = static_cast<char>(major << 5);
  if (v < 24) {
    out.push_back(static_cast<char>(m | static_cast<char>(v)));
  } else if (v <= 0xff) {
    out.push_back(static_cast<char>(m | 24));
    out.push_back(static_cast<char>(v));
  } else if (v <= 0xffff) {
    out.push_back(static_cast<char>(m | 25));
    for (int i = 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  } else if (v <= 0xffffffffu) {
    out.push_back(static_cast<char>(m | 26));
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  } else {
    out.push_back(static_cast<char>(m | 27));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}
void cbor_key(std::string& out, std::string_view k) {
  cbor_head(out, 3, k.size());
  out.append(k);
}
void cbor_int(std::string& out, std::int64_t v) {
  if (v >= 0) cbor_head(out, 0, static_cast<std::uint64_t>(v));
  else cbor_head(out, 1, static_cast<std::uint64_t>(-(v + 1)));
}

void encode_event_into(std::string& out, const Event& e) {
  const bool step = e.step != kNoStep, task = e.task >= 0, rc = e.restart != 0, node = !e.node.empty(),
             attrs = !e.attrs.empty();
  cbor_head(out, 5, 4u + step + task + rc + node + attrs);
  cbor_key(out, "id");
  cbor_head(out, 2, e.id.size());
  out.append(reinterpret_cast<const char*>(e.id.data()), e.id.size());
  cbor_key(out, "t");
  cbor_head(out, 0, static_cast<std::uint16_t>(e.type));
  cbor_key(out, "ts");
  cbor_int(out, e.ts_ns);
  cbor_key(out, "job");
  cbor_head(out, 0, e.job);
  if (step) { cbor_key(out, "step"); cbor_head(out, 0, e.step); }
  if (task) { cbor_key(out, "task"); cbor_head(out, 0, static_cast<std::uint64_t>(e.task)); }
  if (rc) { cbor_key(out, "rc"); cbor_head(out, 0, e.restart); }
  if (node) { cbor_key(out, "node"); cbor_head(out, 3, e.node.size()); out.append(e.node); }
  if (attrs) { cbor_key(out, "a"); json::to_cbor(e.attrs, out); }
}

}  // namespace

std::string encode_event(const Event& e) {
  std::string out;
  encode_event_into(out, e);
  return out;
}

std::string encode_batch(const std::vector<Event>& events) {
  std::string out;
  out.reserve(events.size() * 128);
  cbor_head(out, 4, events.size());
  for (const Event& e : events) encode_event_into(out, e);
  return out;
}

std::string encode_hello_payload(const HelloPayload& h) {
  json j = {{"v", 1},
            {"key", json::binary(std::vector<std::uint8_t>(h.key.begin(), h.key.end()))},
            {"role", h.role},
            {"host", h.host},
            {"pid", h.pid}};
  return cbor_encode(j);
}

Result<HelloPayload> decode_hello_payload(std::string_view bytes) {
  auto doc = cbor_decode(bytes);
  if (!doc) return doc.error();
  const json& j = *doc;
  if (!j.is_object()) return bad("hello payload is not a map");
  const json* v = field(j, "v");
  if (!v || !v->is_number_unsigned()) return bad("hello payload has no version");
  if (v->get<std::uint64_t>() != 1)
    return make_error(Errc::bad_version, "hello payload version " + v->dump() + " is not supported");
  HelloPayload h;
  const json* key = field(j, "key");
  if (!key || !key->is_binary() || key->get_binary().size() != h.key.size())
    return bad("hello payload 'key' must be 32 bytes");
  std::memcpy(h.key.data(), key->get_binary().data(), h.key.size());
  const json* role = field(j, "role");
  if (!role || !role->is_string()) return bad("hello payload 'role' must be a string");
  h.role = role->get<std::string>();
  if (h.role != "plugin" && h.role != "sdk" && h.role != "cli" && h.role != "bench")
    return bad("hello payload role '" + h.role + "' is unknown");
  if (const json* host = field(j, "host"); host && host->is_string()) h.host = host->get<std::string>();
  if (const json* pid = field(j, "pid"); pid && pid->is_number_integer()) h.pid = pid->get<std::int64_t>();
  return h;
}

std::string encode_error_body(Errc code, std::string_view message) {
  return cbor_encode(json{{"code", errc_name(code)}, {"msg", message}});
}

Error decode_error_body(std::string_view body) {
  auto doc = cbor_decode(body);
  if (!doc || !doc->is_object()) return make_error(Errc::malformed, "unreadable error frame");
  const json* code = field(*doc, "code");
  const json* msg = field(*doc, "msg");
  std::string c = code && code->is_string() ? code->get<std::string>() : "internal";
  return make_error(errc_from_text(c), msg && msg->is_string() ? msg->get<std::string>() : c);
}

std::string encode_reply_ok(const json& data) { return cbor_encode(json{{"ok", true}, {"data", data}}); }

std::string encode_reply_error(Errc code, std::string_view message) {
  return cbor_encode(json{{"ok", false}, {"code", errc_name(code)}, {"msg", message}});
}

std::string encode_ack(const AckInfo& ack) {
  json rej = json::array();
  for (const auto& [i, why] : ack.rejected) rej.push_back(json::array({i, why}));
  json body = {{"stored", ack.stored}, {"dup", ack.duplicates}, {"rej", rej}};
  if (!ack.commands.empty()) {
    json cmds = json::array();
    for (const Command& c : ack.commands) cmds.push_back(json::array({c.id, c.kind, c.reason}));
    body["cmd"] = cmds;
  }
  return cbor_encode(body);
}

Result<AckInfo> decode_ack(std::string_view body) {
  auto doc = cbor_decode(body);
  if (!doc) return doc.error();
  const json& j = *doc;
  if (!j.is_object() || !j.contains("stored") || !j["stored"].is_number_unsigned() || !j.contains("dup") ||
      !j["dup"].is_number_unsigned() || !j.contains("rej") || !j["rej"].is_array())
    return make_error(Errc::malformed, "ack body is not {stored, dup, rej}");
  AckInfo a;
  a.stored = j["stored"].get<std::uint64_t>();
  a.duplicates = j["dup"].get<std::uint64_t>();
  for (const json& r : j["rej"]) {
    if (!r.is_array() || r.size() != 2 || !r[0].is_number_unsigned() || !r[1].is_string())
      return make_error(Errc::malformed, "ack rejection entry is not [index, reason]");
    a.rejected.emplace_back(r[0].get<std::size_t>(), r[1].get<std::string>());
  }
  if (j.contains("cmd")) {
    if (!j["cmd"].is_array()) return make_error(Errc::malformed, "ack 'cmd' is not an array");
    for (const json& c : j["cmd"]) {
      if (!c.is_array() || c.size() != 3 || !c[0].is_number_unsigned() || !c[1].is_string() || !c[2].is_string())
        return make_error(Errc::malformed, "ack command is not [id, kind, reason]");
      a.commands.push_back({c[0].get<std::uint64_t>(), c[1].get<std::string>(), c[2].get<std::string>()});
    }
  }
  return a;
}

}  // namespace vigil
