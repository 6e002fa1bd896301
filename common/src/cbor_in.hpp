// cbor_in.hpp — the strict CBOR reader behind cbor_decode() and decode_batch()
// (message.cpp, message_decode.cpp). Internal to libvigil_common.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "vigil/message.hpp"

namespace vigil::detail {

inline Error bad(const std::string& m) { return make_error(Errc::malformed, m); }

inline const json* field(const json& m, const char* k) {
  auto it = m.find(k);
  return it == m.end() ? nullptr : &*it;
}

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

}  // namespace vigil::detail
