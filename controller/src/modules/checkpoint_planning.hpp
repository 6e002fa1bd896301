// checkpoint_planning.hpp — checkpoints vigild asks for (ADR 0013).
//
// In:    once a second, slurmctld's running jobs and reservations (Core::view),
//        each job's options (protect) and newest verified checkpoint; a user's
//        `checkpoint` request.
// Out:   checkpoint commands to the job's running steps (before the time
//        limit, before a MAINT reservation on its nodes, at preemption,
//        periodically for protected jobs, on request) and a
//        `checkpoint_requested` event each; a protected job's clean requeue
//        before maintenance (through RecoveryModule::planned_requeue) or a
//        `recovery` `hold` with the reason.
// State: the planner's memory of what it asked (checkpoint_plan.cpp, pure).
// Fails: a job with no running step to signal gets the reason on the event.
#pragma once

#include "checkpoint_ledger.hpp"
#include "checkpoint_plan.hpp"
#include "core.hpp"
#include "recovery_module.hpp"

namespace vigil::controller {

class CheckpointPlanning : public Module {
 public:
  CheckpointPlanning(Core& core, CheckpointLedger& ledger, RecoveryModule* recovery);
  const char* name() const override { return "checkpoint-planning"; }

 private:
  void tick(std::int64_t now);
  void carry_out(const PlanAction& a, std::int64_t now);
  void request(const Caller& who, const json& req, Reply reply);
  Core& core_;
  CheckpointLedger& ledger_;
  RecoveryModule* recovery_;  // null without Slurm: a protected job is then held
  CheckpointPlanner planner_;
  std::int64_t next_ns_ = 0;
};

}  // namespace vigil::controller
