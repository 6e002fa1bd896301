// rules.cpp — see rules.hpp.
#include "vigil/rules.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace vigil {
namespace {

Error rule_error(std::string_view rule, const std::string& why) {
  return make_error(Errc::malformed, "rule '" + std::string(rule) + "': " + why);
}

bool name_ok(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '.'))
      return false;
  return true;
}

bool parse_double(std::string_view s, double& out) {
  if (s.empty() || s.size() > 40) return false;
  const std::string t(s);
  char* end = nullptr;
  errno = 0;
  out = std::strtod(t.c_str(), &end);
  return errno == 0 && end && *end == '\0' && std::isfinite(out);
}

// "90", "90s", "30m", "2h", "1h30m" -> ns
bool parse_duration(std::string_view s, std::int64_t& ns) {
  if (s.empty()) return false;
  std::int64_t total = 0, cur = 0;
  bool digits = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      cur = cur * 10 + (c - '0');
      digits = true;
      if (cur > 10'000'000) return false;
      continue;
    }
    if (!digits) return false;
    const std::int64_t mult = c == 's' ? 1 : c == 'm' ? 60 : c == 'h' ? 3600 : c == 'd' ? 86400 : 0;
    if (!mult) return false;
    total += cur * mult;
    cur = 0;
    digits = false;
  }
  total += cur;
  if (total < 1 || total > 30LL * 86400) return false;
  ns = total * 1'000'000'000LL;
  return true;
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

}  // namespace

const char* rule_action_name(Rule::Action a) { return a == Rule::Action::stop ? "stop" : "alert"; }

Result<std::vector<Rule>> parse_rules(std::string_view spec) {
  std::vector<Rule> out;
  if (spec.empty()) return make_error(Errc::malformed, "no rules given");
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    const std::size_t comma = spec.find(',', pos);
    const std::string_view text = spec.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? spec.size() + 1 : comma + 1;
    if (text.empty()) return make_error(Errc::malformed, "empty rule (two commas in a row?)");
    if (out.size() == kMaxRules) return make_error(Errc::malformed, "at most 16 rules");
    Rule r;
    r.text = std::string(text);
    std::string_view cond = text;
    if (const auto at = text.rfind('@'); at != std::string_view::npos) {
      const std::string_view act = text.substr(at + 1);
      if (act == "stop") r.action = Rule::Action::stop;
      else if (act == "alert") r.action = Rule::Action::alert;
      else return rule_error(text, "action must be @alert or @stop");
      cond = text.substr(0, at);
    }
    if (cond == "nan") {
      r.kind = Rule::Kind::nonfinite;
    } else if (cond.rfind("stall=", 0) == 0) {
      r.kind = Rule::Kind::stall;
      if (!parse_duration(cond.substr(6), r.stall_ns))
        return rule_error(text, "stall needs a duration like 90s, 10m, 1h (1 s .. 30 d)");
    } else {
      const auto op = cond.find_first_of("<>");
      if (op == std::string_view::npos)
        return rule_error(text, "expected nan, stall=DURATION or METRIC>X / METRIC<X[:K]");
      r.kind = cond[op] == '>' ? Rule::Kind::above : Rule::Kind::below;
      std::string_view metric = cond.substr(0, op), rest = cond.substr(op + 1);
      if (const auto slash = metric.find('/'); slash != std::string_view::npos) {
        r.stage = std::string(metric.substr(0, slash));
        metric = metric.substr(slash + 1);
        if (!name_ok(r.stage)) return rule_error(text, "stage must be [A-Za-z0-9_.-]{1,64}");
      }
      if (!name_ok(metric)) return rule_error(text, "metric must be [A-Za-z0-9_.-]{1,64}");
      r.metric = std::string(metric);
      if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
        const std::string k(rest.substr(colon + 1));
        char* end = nullptr;
        const long n = std::strtol(k.c_str(), &end, 10);
        if (k.empty() || !end || *end != '\0' || n < 1 || n > 1000000)
          return rule_error(text, "the count after ':' must be an integer in [1, 1000000]");
        r.consecutive = static_cast<int>(n);
        rest = rest.substr(0, colon);
      }
      if (!parse_double(rest, r.threshold)) return rule_error(text, "threshold must be a finite number");
    }
    out.push_back(std::move(r));
  }
  return out;
}

RuleWatch::RuleWatch(std::vector<Rule> rules, std::int64_t now_ns)
    : rules_(std::move(rules)), fired_(rules_.size(), false), streak_(rules_.size()), last_value_ns_(now_ns) {}

std::vector<RuleFiring> RuleWatch::observe(std::string_view stage, std::string_view name, const double* values,
                                           std::size_t n, std::int64_t step, std::int64_t now_ns) {
  std::vector<RuleFiring> out;
  last_value_ns_ = now_ns;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    if (fired_[i] || r.kind == Rule::Kind::stall) continue;
    if (!r.stage.empty() && r.stage != stage) continue;
    if (!r.metric.empty() && r.metric != name) continue;
    RuleFiring f{i, r.text, std::string(stage), std::string(name), r.action, 0, step, ""};
    if (r.kind == Rule::Kind::nonfinite) {
      for (std::size_t k = 0; k < n; ++k)
        if (!std::isfinite(values[k])) {
          f.value = values[k];
          f.why = std::string(stage) + "/" + std::string(name) + " is " + fmt(values[k]) +
                  (n > 1 ? " (element " + std::to_string(k) + ")" : "") + " at step " + std::to_string(step);
          fired_[i] = true;
          break;
        }
    } else {
      // Arrays: the extreme element counts.
      double v = values[0];
      for (std::size_t k = 1; k < n; ++k) v = r.kind == Rule::Kind::above ? std::max(v, values[k]) : std::min(v, values[k]);
      const bool beyond = r.kind == Rule::Kind::above ? v > r.threshold : v < r.threshold;
      int& streak = streak_[i][std::string(stage) + "/" + std::string(name)];
      streak = beyond ? streak + 1 : 0;
      if (streak >= r.consecutive) {
        f.value = v;
        f.why = std::string(stage) + "/" + std::string(name) + " = " + fmt(v) +
                (r.kind == Rule::Kind::above ? " > " : " < ") + fmt(r.threshold) +
                (r.consecutive > 1 ? " for " + std::to_string(r.consecutive) + " values" : "") + " at step " +
                std::to_string(step);
        fired_[i] = true;
      }
    }
    if (fired_[i]) out.push_back(std::move(f));
  }
  return out;
}

std::vector<RuleFiring> RuleWatch::tick(std::int64_t now_ns) {
  std::vector<RuleFiring> out;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    if (fired_[i] || r.kind != Rule::Kind::stall || now_ns - last_value_ns_ < r.stall_ns) continue;
    fired_[i] = true;
    RuleFiring f{i, r.text, "", "", r.action, 0, 0, ""};
    f.why = "no new result for " + std::to_string((now_ns - last_value_ns_) / 1'000'000'000) + " s";
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace vigil
