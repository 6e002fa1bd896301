// registry.cpp — see registry.hpp.
#include "registry.hpp"

#include "checkpoint_ledger.hpp"
#include "checkpoint_planning.hpp"
#include "checkpoint_retention.hpp"
#include "fence.hpp"
#include "identity_module.hpp"
#include "lifecycle_module.hpp"
#include "liveness.hpp"
#include "outputs.hpp"
#include "reconcile.hpp"
#include "recovery_module.hpp"
#include "results_module.hpp"
#include "timeline_retention.hpp"
#include "usage.hpp"

namespace vigil::controller {

ModuleSet load_modules(Core& core) {
  ModuleSet m;
  auto add = [&](auto mod) {
    auto* raw = mod.get();
    m.all.push_back(std::move(mod));
    return raw;
  };
  add(std::make_unique<IdentityModule>(core));  // first: the job an event belongs to
  add(std::make_unique<LivenessModule>(core));
  add(std::make_unique<FenceModule>(core));  // before the modules that act on reports
  add(std::make_unique<LifecycleModule>(core));
  m.reconcile = add(std::make_unique<ReconcileModule>(core));
  auto* ledger = add(std::make_unique<CheckpointLedger>(core));
  auto* recovery = add(std::make_unique<RecoveryModule>(core, *ledger));
  add(std::make_unique<CheckpointRetention>(core, *ledger));
  add(std::make_unique<CheckpointPlanning>(core, *ledger, core.slurm ? recovery : nullptr));
  m.results = add(std::make_unique<ResultsModule>(core));
  add(std::make_unique<OutputsModule>(core));
  add(std::make_unique<UsageModule>(core));
  add(std::make_unique<TimelineRetention>(core));
  return m;
}

void ModuleSet::start() { reconcile->start(); }

void ModuleSet::stop() {
  reconcile->stop();
  results->drain();
}

}  // namespace vigil::controller
