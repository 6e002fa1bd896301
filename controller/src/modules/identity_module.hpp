// identity_module.hpp — a new job under a reused Slurm id, caught at its first
// report (docs/adr/0017-job-identity.md).
//
// In:    every authorised event before it is stored (on_validate); it looks
//        only at `job_start` (a batch script began) for an id whose job has
//        ended.
// Out:   Core::retire of the ended job when the start came after its end, in
//        an attempt it already had (identity.hpp): the new job's events then
//        land on a timeline of their own. Never refuses an event.
// State: none (what it needs is the jobs row and the event's id in the store).
// Fails: a store error while archiving is logged; the event is stored under
//        the id as before (and reconciliation tries again).
// slurmctld's side of the same question (a different submit time) is asked by
// the reconcile module before it applies each job.
#pragma once

#include "core.hpp"

namespace vigil::controller {

class IdentityModule : public Module {
 public:
  explicit IdentityModule(Core& core);
  const char* name() const override { return "identity"; }

 private:
  Core& core_;
};

}  // namespace vigil::controller
