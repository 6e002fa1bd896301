// registry.hpp — which modules vigild runs, in which order.
//
// Order matters only where two modules take the same event or tick: the
// host calls them in registration order. Liveness first (signs of life before
// anything reacts to them), then the state machine, then what reacts to state
// (recovery), then checkpoints, results and outputs. Policy modules of later
// issues (admission, usage, priority, workflows, burst) are added here.
#pragma once

#include <memory>
#include <vector>

#include "core.hpp"

namespace vigil::controller {

class ReconcileModule;
class ResultsModule;

struct ModuleSet {
  std::vector<std::unique_ptr<Module>> all;
  ReconcileModule* reconcile = nullptr;
  ResultsModule* results = nullptr;
  void start();  // threads of modules that have them (reconciliation)
  void stop();   // joins them; committed result values reach their files
};

ModuleSet load_modules(Core& core);

}  // namespace vigil::controller
