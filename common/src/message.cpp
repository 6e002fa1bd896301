// message.cpp — strict CBOR bodies (see message.hpp).
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

namespace vigil {
namespace {

Error bad(const std::string& m) { return make_error(Errc::malformed, m); }

// A strict CBOR (RFC 8949) reader over one buffer, written for the hot path of
// vigild's intake (docs/research/ingest-bench.md) and for hostile input:
//   * nesting of arrays and maps is bounded by max_depth (the only recursion);
//   * indefinite-length strings are read iteratively and their chunks must be
//     definite strings of the same type (RFC 8949 3.2.3), so no input makes it
//     recurse without bound (nlohmann's reader recursed once per nested chunk
//     header: 50 KB of 0x7f overflowed the stack);
//   * no tags, no simple values but false/true/null, no undefined, no
//     reserved additional information, map keys are text strings and unique;
//   * a negative integer must fit an int64 (-2^63 .. -1);
//   * exactly one item, no trailing bytes; lengths are checked against the
//     bytes left before anything is allocated for them.
// Values come out as nlohmann json with the same types nlohmann's own CBOR
// reader gives (unsigned, integer, float, string, binary, array, object).
class CborIn {
 public:
  CborIn(std::string_view in, int max_depth)
      : b_(reinterpret_cast<const std::uint8_t*>(in.data())), p_(b_), e_(b_ + in.size()), max_depth_(max_depth) {}

  struct Head {
    std::uint8_t major = 0, ai = 0;
    std::uint64_t arg = 0;      // value, length, or raw float bits
    bool indefinite = false;    // majors 2..5 with additional information 31
  };

  std::string error;

  bool at_end() const { return p_ == e_; }
  std::size_t left() const { return static_cast<std::size_t>(e_ - p_); }
  bool peek_break() const { return p_ != e_ && *p_ == 0xff; }
  void skip_break() { ++p_; }

  bool fail(std::string m) {
    if (error.empty()) error = std::move(m);
    return false;
  }
  bool syntax(const char* what) { return fail("CBOR parse error at byte " + std::to_string(p_ - b_) + ": " + what); }
  bool too_deep() { return fail("nesting deeper than " + std::to_string(max_depth_)); }
  bool end_of_input() {
    if (at_end()) return true;
    return syntax("trailing bytes after the value");
  }

  // The initial byte and its argument. A "break" (0xff) comes back as major 7,
  // ai 31; callers that allow one check peek_break() first.
  bool head(Head& h) {
    if (p_ == e_) return syntax("unexpected end of input");
    const std::uint8_t ib = *p_++;
    h.major = static_cast<std::uint8_t>(ib >> 5);
    h.ai = static_cast<std::uint8_t>(ib & 31);
    h.indefinite = false;
    if (h.ai < 24) {
      h.arg = h.ai;
      return true;
    }
    if (h.ai <= 27) {
      const std::size_t n = std::size_t{1} << (h.ai - 24);
      if (left() < n) return syntax("unexpected end of input");
      std::uint64_t v = 0;
      for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p_[i];
      p_ += n;
      h.arg = v;
      return true;
    }
    if (h.ai == 31) {
      if (h.major >= 2 && h.major <= 5) {
        h.indefinite = true;
        return true;
      }
      if (h.major == 7) return syntax("unexpected break");
      return syntax("indefinite length not allowed for this major type");
    }
    return syntax("reserved additional information");
  }

  // Appends the bytes of a string (major 2 or 3) whose head is `h`.
  template <typename Out>
  bool string_body(const Head& h, Out& out) {
    if (!h.indefinite) return take(h.arg, out);
    for (;;) {
      if (p_ == e_) return syntax("unexpected end of input");
      if (*p_ == 0xff) {
        ++p_;
        return true;
      }
      Head c;
      if (!head(c)) return false;
      if (c.major != h.major || c.indefinite)
        return syntax("indefinite-length string chunk is not a definite string of the same type");
      if (!take(c.arg, out)) return false;
    }
  }

  bool key(std::string& k) {
    Head h;
    if (!head(h)) return false;
    if (h.major != 3) return syntax("map key is not a text string");
    k.clear();
    return string_body(h, k);
  }

  bool value(json& out, int depth) {
    Head h;
    return head(h) && value_from(h, out, depth);
  }

  // `depth`: containers open around this value.
  bool value_from(const Head& h, json& out, int depth) {
    switch (h.major) {
      case 0:
        out = static_cast<json::number_unsigned_t>(h.arg);
        return true;
      case 1:
        if (h.arg > static_cast<std::uint64_t>(INT64_MAX)) return syntax("negative integer out of range");
        out = static_cast<json::number_integer_t>(-1 - static_cast<std::int64_t>(h.arg));
        return true;
      case 2: {
        json::binary_t::container_type bytes;
        if (!string_body(h, bytes)) return false;
        out = json::binary(std::move(bytes));
        return true;
      }
      case 3: {
        std::string s;
        if (!string_body(h, s)) return false;
        out = std::move(s);
        return true;
      }
      case 4: {
        if (depth >= max_depth_) return too_deep();
        out = json::array();
        auto& arr = out.get_ref<json::array_t&>();
        if (!h.indefinite) {
          if (h.arg > left()) return syntax("array length exceeds the input");
          arr.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(h.arg, 16)));
          for (std::uint64_t i = 0; i < h.arg; ++i)
            if (!value(arr.emplace_back(), depth + 1)) return false;
          return true;
        }
        while (!peek_break())
          if (!value(arr.emplace_back(), depth + 1)) return false;
        skip_break();
        return true;
      }
      case 5:
        if (depth >= max_depth_) return too_deep();
        out = json::object();
        return map_entries(h, out.get_ref<json::object_t&>(), depth + 1);
      case 6:
        return syntax("CBOR tags are not allowed");
      default:
        return simple(h, out);
    }
  }

  // Entries of a map (head `h`) into `obj`; `depth` counts the map itself.
  bool map_entries(const Head& h, json::object_t& obj, int depth) {
    std::string k;
    auto entry = [&]() {
      if (!key(k)) return false;
      auto [it, fresh] = obj.try_emplace(std::move(k));
      if (!fresh) return fail("duplicate map key '" + it->first + "'");
      return value(it->second, depth);
    };
    if (!h.indefinite) {
      if (h.arg > left() / 2) return syntax("map length exceeds the input");
      for (std::uint64_t i = 0; i < h.arg; ++i)
        if (!entry()) return false;
      return true;
    }
    while (!peek_break())
      if (!entry()) return false;
    skip_break();
    return true;
  }

 private:
  template <typename Out>
  bool take(std::uint64_t n, Out& out) {
    if (n > left()) return syntax("unexpected end of input");
    out.insert(out.end(), p_, p_ + n);
    p_ += n;
    return true;
  }

  bool simple(const Head& h, json& out) {
    switch (h.ai) {
      case 20: out = false; return true;
      case 21: out = true; return true;
      case 22: out = nullptr; return true;
      case 25: out = half_to_double(static_cast<std::uint16_t>(h.arg)); return true;
      case 26: {
        const auto bits = static_cast<std::uint32_t>(h.arg);
        float f;
        std::memcpy(&f, &bits, sizeof f);
        out = static_cast<double>(f);
        return true;
      }
      case 27: {
        double d;
        std::memcpy(&d, &h.arg, sizeof d);
        out = d;
        return true;
      }
      default:
        return syntax("simple value not allowed (only false, true, null and floats)");
    }
  }

  static double half_to_double(std::uint16_t half) {
    const int exp = (half >> 10) & 0x1f;
    const int mant = half & 0x3ff;
    double v;
    if (exp == 0) v = std::ldexp(mant, -24);                       // subnormal
    else if (exp == 31) v = mant == 0 ? HUGE_VAL : std::nan("");   // inf, NaN
    else v = std::ldexp(mant + 1024, exp - 25);
    return (half & 0x8000) ? -v : v;
  }

  const std::uint8_t* b_;
  const std::uint8_t* p_;
  const std::uint8_t* e_;
  int max_depth_;
};

const json* field(const json& m, const char* k) {
  auto it = m.find(k);
  return it == m.end() ? nullptr : &*it;
}

}  // namespace

Result<json> cbor_decode(std::string_view bytes, int max_depth) {
  CborIn in(bytes, max_depth);
  json root;
  try {
    if (!in.value(root, 0) || !in.end_of_input()) return bad(in.error);
  } catch (const std::exception& ex) {  // allocation failure
    return bad(std::string("CBOR decode failed: ") + ex.what());
  }
  return root;
}

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
EventId new_event_id() {
  EventId id;
  const auto ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  for (int i = 0; i < 8; ++i) id[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ns >> (56 - 8 * i));
  // getrandom(2), not OpenSSL: the SPANK plugin links this file without libcrypto.
  std::size_t got = 0;
  while (got < 8) {
    const ssize_t n = getrandom(id.data() + 8 + got, 8 - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
    else if (errno != EINTR) std::abort();  // no kernel randomness: nothing safe to do
  }
  return id;
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

namespace {

// The fields of an event map, in the order decode_event() tries them.
enum Field : int { f_id, f_t, f_ts, f_job, f_step, f_task, f_rc, f_node, f_a, f_unknown };

Field field_of(std::string_view k) {
  switch (k.size()) {
    case 1: return k[0] == 't' ? f_t : k[0] == 'a' ? f_a : f_unknown;
    case 2: return k == "id" ? f_id : k == "ts" ? f_ts : k == "rc" ? f_rc : f_unknown;
    case 3: return k == "job" ? f_job : f_unknown;
    case 4: return k == "step" ? f_step : k == "task" ? f_task : k == "node" ? f_node : f_unknown;
    default: return f_unknown;
  }
}

// Decodes one element of a batch straight into `e`, without a json DOM for the
// envelope (only attrs become json). Returns false on a structural error (the
// whole body is refused, as before); otherwise `why` says whether the event is
// acceptable. The checks and messages are event_from_json()'s; when several
// fields are wrong, the one reported is the first in key order, as there
// (event_from_json walks a std::map).
bool decode_event(CborIn& in, const CborIn::Head& h, int depth, int max_depth, Event& e,
                  std::optional<Error>& why, std::string& k, std::string& scratch) {
  json junk;  // values of wrong type or unknown fields: parsed (the body must be valid), then dropped
  if (h.major != 5) {
    if (!in.value_from(h, junk, depth)) return false;
    why = bad("event is not a map");
    return true;
  }
  if (depth >= max_depth) return in.too_deep();
  std::string err_key;
  auto note = [&](std::string_view key, Error err) {
    if (!why || key < err_key) {
      err_key = key;
      why = std::move(err);
    }
  };
  unsigned seen = 0;
  std::vector<std::string> unknown;  // names seen, for the duplicate check
  auto entry = [&]() -> bool {
    if (!in.key(k)) return false;
    const Field f = field_of(k);
    if (f != f_unknown) {
      if (seen & (1u << f)) return in.fail("duplicate map key '" + k + "'");
      seen |= 1u << f;
    } else {
      if (std::find(unknown.begin(), unknown.end(), k) != unknown.end())
        return in.fail("duplicate map key '" + k + "'");
      unknown.push_back(k);
    }
    CborIn::Head v;
    if (!in.head(v)) return false;
    auto wrong = [&](std::string_view key, std::string msg) {
      if (!in.value_from(v, junk, depth + 1)) return false;
      note(key, bad(msg));
      return true;
    };
    auto u32 = [&](std::uint32_t& dst, const char* key, const char* msg) {
      if (v.major == 0 && v.arg <= 0xffffffffu) {
        dst = static_cast<std::uint32_t>(v.arg);
        return true;
      }
      return wrong(key, msg);
    };
    switch (f) {
      case f_id:
        if (v.major == 2) {
          scratch.clear();
          if (!in.string_body(v, scratch)) return false;
          if (scratch.size() == e.id.size()) std::memcpy(e.id.data(), scratch.data(), e.id.size());
          else note("id", bad("event field 'id' must be 16 bytes"));
          return true;
        }
        return wrong("id", "event field 'id' must be 16 bytes");
      case f_t:
        if (v.major == 0) {
          if (v.arg < 1 || v.arg > kMaxEventType)
            note("t", make_error(Errc::bad_kind, "unknown event type " + std::to_string(v.arg)));
          else e.type = static_cast<EventType>(v.arg);
          return true;
        }
        return wrong("t", "event field 't' must be an unsigned integer");
      case f_ts:
        if (v.major == 0) {
          e.ts_ns = static_cast<std::int64_t>(v.arg);  // as json's get<int64_t>() did
          return true;
        }
        if (v.major == 1) {
          if (v.arg > static_cast<std::uint64_t>(INT64_MAX)) return in.syntax("negative integer out of range");
          e.ts_ns = -1 - static_cast<std::int64_t>(v.arg);
          return true;
        }
        return wrong("ts", "event field 'ts' must be an integer");
      case f_job: return u32(e.job, "job", "event field 'job' must be a 32-bit unsigned integer");
      case f_step: return u32(e.step, "step", "event field 'step' must be a 32-bit unsigned integer");
      case f_rc: return u32(e.restart, "rc", "event field 'rc' must be a 32-bit unsigned integer");
      case f_task:
        if (v.major == 0 && v.arg <= 0x7fffffff) {
          e.task = static_cast<std::int32_t>(v.arg);
          return true;
        }
        return wrong("task", "event field 'task' must be a non-negative 32-bit integer");
      case f_node:
        if (v.major == 3) {
          scratch.clear();
          if (!in.string_body(v, scratch)) return false;
          if (scratch.size() <= kMaxNodeName) e.node.assign(scratch);
          else note("node", bad("event field 'node' must be a string of at most 64 bytes"));
          return true;
        }
        return wrong("node", "event field 'node' must be a string of at most 64 bytes");
      case f_a:
        if (v.major == 5) {
          if (depth + 1 >= max_depth) return in.too_deep();
          if (!e.attrs.is_object()) e.attrs = json::object();
          return in.map_entries(v, e.attrs.get_ref<json::object_t&>(), depth + 2);
        }
        return wrong("a", "event field 'a' must be a map");
      default: {
        const std::string key = k;
        return wrong(key, "event has unknown field '" + key + "'");
      }
    }
  };
  if (!h.indefinite) {
    if (h.arg > in.left() / 2) return in.syntax("map length exceeds the input");
    for (std::uint64_t i = 0; i < h.arg; ++i)
      if (!entry()) return false;
  } else {
    while (!in.peek_break())
      if (!entry()) return false;
    in.skip_break();
  }
  if (why) return true;
  if (!(seen & (1u << f_id))) why = bad("event field 'id' must be 16 bytes");
  else if (!(seen & (1u << f_t))) why = bad("event field 't' must be an unsigned integer");
  else if (!(seen & (1u << f_ts))) why = bad("event field 'ts' must be an integer");
  else if (!(seen & (1u << f_job))) why = bad("event field 'job' must be a 32-bit unsigned integer");
  return true;
}

}  // namespace

// One pass over the body, events built in place (see CborIn, decode_event).
// Same results as cbor_decode() + event_from_json() per element, which the
// unit tests and the fuzz target check against each other.
Result<DecodedBatch> decode_batch(std::string_view body) {
  CborIn in(body, kMaxCborDepth);
  DecodedBatch out;
  try {
    CborIn::Head top;
    if (!in.head(top)) return bad(in.error);
    if (top.major != 4) {
      json junk;  // a broken body says so first, as before
      if (!in.value_from(top, junk, 0) || !in.end_of_input()) return bad(in.error);
      return bad("batch body must be an array of events");
    }
    if (!top.indefinite && top.arg > in.left()) return bad("CBOR parse error: array length exceeds the input");
    // Over the limit: still parsed to the end (a broken body is reported as
    // broken), but nothing is kept.
    bool over = !top.indefinite && top.arg > kMaxEventsPerBatch;
    if (!over) out.events.reserve(static_cast<std::size_t>(top.arg));
    std::string k, scratch;
    std::size_t n = 0;
    auto element = [&]() {
      CborIn::Head h;
      if (!in.head(h)) return false;
      if (n >= kMaxEventsPerBatch) over = true;
      std::optional<Error> why;
      if (over) {
        Event sink;
        if (!decode_event(in, h, 1, kMaxCborDepth, sink, why, k, scratch)) return false;
      } else {
        Event& e = out.events.emplace_back();
        if (!decode_event(in, h, 1, kMaxCborDepth, e, why, k, scratch)) return false;
        if (why) {
          out.events.pop_back();
          out.rejected.emplace_back(n, std::move(*why));
        }
      }
      ++n;
      return true;
    };
    if (!top.indefinite) {
      for (std::uint64_t i = 0; i < top.arg; ++i)
        if (!element()) return bad(in.error);
    } else {
      while (!in.peek_break())
        if (!element()) return bad(in.error);
      in.skip_break();
    }
    if (!in.end_of_input()) return bad(in.error);
    if (over)
      return make_error(Errc::too_large, "batch of " + std::to_string(n) + " events exceeds the limit of " +
                                             std::to_string(kMaxEventsPerBatch));
  } catch (const std::exception& ex) {  // allocation failure
    return bad(std::string("CBOR decode failed: ") + ex.what());
  }
  return out;
}

namespace {

// Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
// U+10FFFF), the set nlohmann's serializer accepts without replacing.
bool valid_utf8(const unsigned char* s, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      else if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      else if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return false;
    for (std::size_t j = 2; j < len; ++j)
      if (s[i + j] < 0x80 || s[i + j] > 0xbf) return false;
    i += len;
  }
  return true;
}

void append_json_string(std::string& out, const std::string& s) {
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  if (!valid_utf8(u, s.size())) {  // rare: let nlohmann do its replacement
    out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // bytes copied as they are, flushed in one append
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = u[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s, run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        out.append(esc, 6);
      }
    }
  }
  out.append(s, run, s.size() - run);
  out.push_back('"');
}

}  // namespace

void append_json_text(std::string& out, const json& j) {
  char buf[64];
  switch (j.type()) {
    case json::value_t::null: out += "null"; return;
    case json::value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case json::value_t::number_unsigned: {
      auto r = std::to_chars(buf, buf + sizeof buf, j.get<json::number_unsigned_t>());
      out.append(buf, r.ptr);
      return;
    }
    case json::value_t::number_integer: {
      auto r = std::to_chars(buf, buf + sizeof buf, j.get<json::number_integer_t>());
      out.append(buf, r.ptr);
      return;
    }
    case json::value_t::number_float: {
      const double d = j.get<double>();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      // nlohmann's own shortest round-trip formatting (grisu2, "1.0" for
      // integral values, so the text reads back as a float): identical text.
      out.append(buf, nlohmann::detail::to_chars(buf, buf + sizeof buf, d));
      return;
    }
    case json::value_t::string: append_json_string(out, j.get_ref<const std::string&>()); return;
    case json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const json& v : j.get_ref<const json::array_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        append_json_text(out, v);
      }
      out.push_back(']');
      return;
    }
    case json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, v] : j.get_ref<const json::object_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        append_json_string(out, key);
        out.push_back(':');
        append_json_text(out, v);
      }
      out.push_back('}');
      return;
    }
    default:  // binary, discarded: rare, nlohmann's rendering
      out += j.dump(-1, ' ', false, json::error_handler_t::replace);
      return;
  }
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
