// recovery.hpp — retry or fail: the recovery policy, as pure logic.
//
// When a running job loses a node (every step there silent), one of its steps
// goes silent on a live node, or Slurm ends it with NODE_FAIL, vigild asks
// decide(). The answer is explicit and goes on the job's timeline with its
// reason (docs/adr/0012-checkpoint-recovery.md):
//   - requeue, after an exponential backoff (base * 2^(attempt-1), capped),
//     excluding the failed node, from the newest verified checkpoint;
//   - fail, once the job's retry budget (--vigil-retries, else the site
//     default) is spent;
//   - nothing, when a decision for this attempt was already made (several
//     nodes lost at once are one failure of one attempt).
// Attempts are counted with Slurm's restart count: attempt = restart + 1.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

namespace vigil::controller {

struct RecoveryPolicy {
  int default_retries = 3;       // when the job gives no --vigil-retries
  double backoff_base_s = 1.0;   // first retry waits this long
  double backoff_max_s = 60.0;
};

struct RecoveryInput {
  // superseded: the attempt was killed right after its superseded predecessor
  // came back (a frozen or cut-off node; ADR 0022): Slurm aliases the two
  // attempts' step ids, so the old srun's cancel can hit the new step.
  enum class Trouble { node_lost, step_silent, node_fail, superseded } trouble = Trouble::node_lost;
  std::string node;                  // the node that failed ("" if unknown)
  std::uint32_t restart = 0;         // Slurm's restart count of the attempt that failed
  std::optional<int> job_retries;    // --vigil-retries
  std::optional<std::uint32_t> decided_for_restart;  // last attempt a decision was made for
  bool has_checkpoint = false;       // a verified checkpoint exists
  std::uint32_t planned_requeues = 0;  // clean requeues (maintenance): not failures, not counted
};

struct RecoveryDecision {
  enum class Action { none, requeue, fail } action = Action::none;
  double delay_s = 0;
  int attempt = 1;    // the attempt that failed (1 = the first run)
  int budget = 0;     // retries allowed
  std::string reason;
};

const char* trouble_name(RecoveryInput::Trouble t);
RecoveryDecision decide_recovery(const RecoveryPolicy& p, const RecoveryInput& in);

}  // namespace vigil::controller
