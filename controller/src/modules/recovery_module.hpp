// recovery_module.hpp — requeue from the last verified checkpoint, or fail (ADR 0012).
//
// In:    `node_lost` and `step_silent` events (liveness), NODE_FAIL in
//        slurmctld's view (reconcile), job_start/job_end of attempts, planned
//        requeues (the checkpoint planner, ADR 0013); `fenced` (a superseded
//        attempt running again) and a successor attempt's FAILED within a
//        minute of it: retried (ADR 0022).
// Out:   `recovery` events (requeue / fail / down / requeued / requeue_failed)
//        with reasons; with a requeue or fail for trouble, the fence on the
//        attempt given up on (Store::set_fence, ADR 0022); state changes RECOVERING or FAILED; to Slurm: lost nodes
//        marked DOWN, the job requeued, released early from the cred_expire hold
//        and kept off the lost nodes, or cancelled when its budget is spent.
// State: decisions waiting for their backoff, exclusions being applied, when
//        a requeued job may be released; Core::decided (the attempt a decision
//        covers). A decided requeue survives a restart through its event.
// Policy: recovery.cpp (pure): budget, backoff, what counts as a retry.
// Fails: a Slurm call that fails is logged and its error recorded on the
//        `requeued` event; exclusion is retried once a second for 10 s.
#pragma once

#include <map>

#include "checkpoint_ledger.hpp"
#include "core.hpp"
#include "recovery.hpp"

namespace vigil::controller {

class RecoveryModule : public Module {
 public:
  RecoveryModule(Core& core, CheckpointLedger& ledger);
  const char* name() const override { return "recovery"; }
  // A clean requeue the planner decided (maintenance): not a failure, so it
  // does not spend the retry budget.
  void planned_requeue(std::uint32_t job, std::uint32_t restart, const std::string& trigger,
                       const std::string& reason, std::int64_t now);
  // Retry or fail, decided once per attempt (several lost nodes are one failure).
  void consider(std::uint32_t job, RecoveryInput::Trouble trouble, const std::string& node, std::int64_t now);

 private:
  std::optional<std::uint32_t> decided_for(std::uint32_t job);
  bool already_down(std::uint32_t job, const std::string& node);
  std::int64_t last_sign_of_life(std::uint32_t job, std::uint32_t restart, const std::string& node, std::int64_t now);
  void old_attempt_ended(const Event& e, std::int64_t now);
  void resume();
  void tick(std::int64_t now);
  void requeue_now(std::uint32_t job, std::int64_t now);
  void interference(std::int64_t now);
  static constexpr std::int64_t kInterferenceWindow = 60'000'000'000LL;

  Core& core_;
  CheckpointLedger& ledger_;
  struct Requeue {
    std::int64_t at_ns = 0;
    std::vector<std::string> down;  // lost nodes: marked DOWN, then excluded
    std::uint32_t restart = 0;
  };
  std::map<std::uint32_t, Requeue> requeues_;                              // decided, waiting for the backoff
  std::map<std::uint32_t, std::pair<std::string, std::int64_t>> excludes_;  // job -> nodes, retry until
  std::map<std::uint32_t, std::int64_t> exclude_next_;                      // job -> next attempt
  // When a requeued job may be made eligible again (see tick()).
  std::map<std::uint32_t, std::int64_t> release_at_;
  std::map<std::uint32_t, std::int64_t> release_after_;  // job -> earliest, once job_end is in
  int kill_wait_s_ = -1;                                  // slurm.conf KillWait, asked once
  std::map<std::uint32_t, std::int64_t> returned_;   // job -> its superseded attempt seen running again
  std::map<std::uint32_t, std::int64_t> failed_at_;  // job -> its successor attempt ended FAILED
};

}  // namespace vigil::controller
