// recovery.cpp — see recovery.hpp.
#include "recovery.hpp"

#include <algorithm>
#include <cmath>

namespace vigil::controller {

const char* trouble_name(RecoveryInput::Trouble t) {
  switch (t) {
    case RecoveryInput::Trouble::node_lost: return "node lost";
    case RecoveryInput::Trouble::step_silent: return "step silent (heartbeats lost)";
    case RecoveryInput::Trouble::node_fail: return "Slurm ended it with NODE_FAIL";
    case RecoveryInput::Trouble::superseded: return "ended as its superseded attempt came back";
  }
  return "?";
}

RecoveryDecision decide_recovery(const RecoveryPolicy& p, const RecoveryInput& in) {
  RecoveryDecision d;
  d.attempt = static_cast<int>(in.restart) + 1;
  d.budget = std::max(0, in.job_retries.value_or(p.default_retries));
  if (in.decided_for_restart && *in.decided_for_restart >= in.restart) return d;  // this attempt is handled
  const std::string what = std::string(trouble_name(in.trouble)) + (in.node.empty() ? "" : " (" + in.node + ")");
  const int retries_used = static_cast<int>(in.restart - std::min(in.restart, in.planned_requeues));
  if (retries_used >= d.budget) {
    d.action = RecoveryDecision::Action::fail;
    d.reason = what + " in attempt " + std::to_string(d.attempt) + "; retry budget of " + std::to_string(d.budget) +
               " exhausted";
    return d;
  }
  d.action = RecoveryDecision::Action::requeue;
  d.delay_s = std::min(p.backoff_max_s, p.backoff_base_s * std::pow(2.0, retries_used));
  d.reason = what + " in attempt " + std::to_string(d.attempt) + "; retry " + std::to_string(retries_used + 1) +
             " of " + std::to_string(d.budget) + " in " + std::to_string(static_cast<int>(d.delay_s)) + " s, " +
             (in.has_checkpoint ? "from the newest verified checkpoint" : "from the start (no verified checkpoint)") +
             (in.node.empty() ? "" : ", excluding " + in.node);
  return d;
}

}  // namespace vigil::controller
