// message_decode.cpp — CBOR bodies into json and into events, in one pass and
// without trusting the input (see message.hpp, cbor_in.hpp).
#include <optional>
#include <string>

#include "cbor_in.hpp"
#include "vigil/message.hpp"

namespace vigil {
using detail::bad;
using detail::CborIn;

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

}  // namespace vigil
