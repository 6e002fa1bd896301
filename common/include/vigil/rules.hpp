// rules.hpp — early-signal rules: parse a job's rules, watch its result values.
//
// Grammar (the --vigil-rules option; docs/user/early-signals.md):
//   rules   := rule ("," rule)*                  at most 16 rules
//   rule    := cond ["@" action]                 action: alert (default) | stop
//   cond    := "nan"                             any value NaN or infinite
//            | metric (">" | "<") number [":" K] K consecutive values beyond the
//                                                threshold (default 1)
//            | "stall=" duration                 no new value for that long
//   metric  := name | stage "/" name             names: [A-Za-z0-9_.-]{1,64}
// e.g. "nan@stop,residual>1e3:3@stop,stall=10m".
// Each rule fires at most once per job. Pure logic over an injected clock: the
// plugin validates the option at submit time with the same parser vigild uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/result.hpp"

namespace vigil {

inline constexpr std::size_t kMaxRules = 16;

struct Rule {
  enum class Kind { nonfinite, above, below, stall } kind = Kind::nonfinite;
  enum class Action { alert, stop } action = Action::alert;
  std::string stage, metric;     // empty stage: any; empty metric: any (nan rules)
  double threshold = 0;
  int consecutive = 1;
  std::int64_t stall_ns = 0;
  std::string text;              // as written, for the timeline
};

Result<std::vector<Rule>> parse_rules(std::string_view spec);
const char* rule_action_name(Rule::Action a);

struct RuleFiring {
  std::size_t rule = 0;
  std::string text, stage, metric;
  Rule::Action action = Rule::Action::alert;
  double value = 0;
  std::int64_t step = 0;
  std::string why;  // human readable: "residual = 2.1e3 > 1e3 for 3 values"
};

// One job's rule state.
class RuleWatch {
 public:
  RuleWatch() = default;
  RuleWatch(std::vector<Rule> rules, std::int64_t now_ns);
  bool empty() const { return rules_.empty(); }
  // A value (or the elements of an array value) of stage/name at `step`.
  std::vector<RuleFiring> observe(std::string_view stage, std::string_view name, const double* values,
                                  std::size_t n, std::int64_t step, std::int64_t now_ns);
  // Stall rules: fire when no value arrived for their duration.
  std::vector<RuleFiring> tick(std::int64_t now_ns);

 private:
  std::vector<Rule> rules_;
  std::vector<bool> fired_;
  std::vector<std::map<std::string, int>> streak_;  // per rule: metric -> consecutive count
  std::int64_t last_value_ns_ = 0;
};

}  // namespace vigil
