// json_text.cpp — append_json_text(): the text nlohmann's dump() gives, into a
// caller's buffer (see message.hpp).
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include "vigil/message.hpp"

namespace vigil {

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

}  // namespace vigil
