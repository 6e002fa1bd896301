// lifecycle_module.hpp — jobs' state machine fed from the event path (ADR 0007).
//
// In:    plugin events (submit, starts, task starts, job_end) and vigild's own
//        detections (step_silent, node_lost, node_recovered).
// Out:   state changes with reasons, through Core::lifecycle (stored in the
//        same transaction as their cause, then dispatched to on_state).
// State: none of its own; the pure rules are lifecycle.cpp. An old attempt's
//        end (Core::decided) does not end a job recovery has decided about.
// Reconciliation with slurmctld, the other input of the state machine, is the
// reconcile module.
#pragma once

#include "core.hpp"

namespace vigil::controller {

class LifecycleModule : public Module {
 public:
  explicit LifecycleModule(Core& core);
  const char* name() const override { return "lifecycle"; }
  // The state machine's input for an event, if it is one.
  static std::optional<LifecycleInput> input_of(const Event& e);

 private:
  Core& core_;
};

}  // namespace vigil::controller
