// hostlist.cpp — see hostlist.hpp.
#include "hostlist.hpp"

#include <cctype>
#include <cstdio>

namespace vigil::spank {
namespace {

Error bad(const std::string& list, const std::string& why) {
  return make_error(Errc::malformed, "node list '" + list + "': " + why);
}

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 9) return false;
  for (unsigned char c : s)
    if (!std::isdigit(c)) return false;
  return true;
}

}  // namespace

Result<std::vector<std::string>> expand_hostlist(const std::string& list, std::size_t limit) {
  std::vector<std::string> out;
  // Split on commas outside brackets.
  std::vector<std::string> items;
  int depth = 0;
  std::string cur;
  for (char c : list) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (depth < 0 || depth > 1) return bad(list, "unbalanced or nested brackets");
    if (c == ',' && depth == 0) {
      items.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (depth != 0) return bad(list, "unbalanced brackets");
  items.push_back(cur);
  for (const std::string& item : items) {
    if (item.empty()) continue;
    const auto open = item.find('[');
    if (open == std::string::npos) {
      out.push_back(item);
      continue;
    }
    const auto close = item.find(']', open);
    const std::string prefix = item.substr(0, open), suffix = item.substr(close + 1);
    if (suffix.find('[') != std::string::npos) return bad(list, "more than one bracket group in a name");
    const std::string body = item.substr(open + 1, close - open - 1);
    std::size_t p = 0;
    while (p <= body.size()) {
      auto comma = body.find(',', p);
      const std::string range = body.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
      const auto dash = range.find('-');
      const std::string lo_s = range.substr(0, dash), hi_s = dash == std::string::npos ? lo_s : range.substr(dash + 1);
      if (!all_digits(lo_s) || !all_digits(hi_s)) return bad(list, "range '" + range + "' is not N or N-M");
      const long lo = std::stol(lo_s), hi = std::stol(hi_s);
      if (hi < lo) return bad(list, "range '" + range + "' runs backwards");
      const int width = static_cast<int>(lo_s.size());  // "01-10" keeps zero padding
      for (long n = lo; n <= hi; ++n) {
        if (out.size() >= limit) return bad(list, "more than " + std::to_string(limit) + " names");
        char num[16];
        std::snprintf(num, sizeof num, "%0*ld", width, n);
        out.push_back(prefix + num + suffix);
      }
      if (comma == std::string::npos) break;
      p = comma + 1;
    }
  }
  return out;
}

}  // namespace vigil::spank
