// liveness.hpp — the heartbeat watch as a module (ADR 0008).
//
// In:    events from the plugins with a node and a step (starts, heartbeats,
//        task events, checkpoint signals, ends); after a restart, the steps
//        the store says were running.
// Out:   `step_silent`, `node_lost`, `node_recovered` events on every affected
//        job's timeline (other modules react to them: lifecycle, recovery);
//        a node drain in Slurm when `drain_on_node_loss`; the `nodes` request;
//        one `steps` row per (job, step, node): started, last sign of life,
//        ended, heartbeat count and largest gap, the newest CPU/RSS sample,
//        written once per group (precommit). Heartbeats are absorbed: not
//        stored as events (ADR 0016).
// State: Core::monitor (what runs where, and when it last spoke); the newest
//        attempt seen per job; the step rows touched in this group.
// Fails: a drain Slurm refuses is logged and counted; detection goes on.
#pragma once

#include <map>
#include <unordered_map>

#include "core.hpp"

namespace vigil::controller {

class LivenessModule : public Module {
 public:
  explicit LivenessModule(Core& core);
  const char* name() const override { return "liveness"; }

 private:
  void track(const Event& e, std::int64_t now);
  void new_attempt(const Event& e);
  void detect(std::int64_t now);
  void note(const Event& e);
  Status flush();
  Core& core_;
  std::unordered_map<std::uint32_t, std::uint32_t> attempt_seen_;
  std::map<StepKey, Store::StepRow> rows_;    // steps touched in this group
  std::map<StepKey, std::int64_t> last_beat_;  // newest heartbeat per step (its clock)
};

}  // namespace vigil::controller
