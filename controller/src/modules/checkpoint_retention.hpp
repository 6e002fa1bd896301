// checkpoint_retention.hpp — deleting checkpoints no longer kept (ADR 0013).
//
// In:    `checkpoint_verified` (ok) events: the ledger grew; `checkpoint`
//        events marked failed (the simulation could not write one: on ENOSPC
//        or EDQUOT the job's older checkpoints make room).
// Out:   deletions on the digest worker as the job's user (fsuid/fsgid), only
//        of the unchanged verified file; `checkpoint_pruned` events (deleted or
//        not, with the reason).
// State: none of its own: the ledger is CheckpointLedger's; the plan is the
//        pure retention.cpp (keep K per job, a per-user byte budget, never a
//        job's newest).
// Fails: a file changed, foreign or not deletable is left, with the reason.
#pragma once

#include "checkpoint_ledger.hpp"
#include "core.hpp"

namespace vigil::controller {

class CheckpointRetention : public Module {
 public:
  CheckpointRetention(Core& core, CheckpointLedger& ledger);
  const char* name() const override { return "checkpoint-retention"; }

 private:
  void run(std::uint32_t job, bool disk_full, std::int64_t now);
  void failed_write(const Event& e, std::int64_t now);
  void pruned(std::uint32_t job, const CheckpointEntry& c, const std::string& why, bool deleted,
              const std::string& error, std::int64_t now);
  Core& core_;
  CheckpointLedger& ledger_;
};

}  // namespace vigil::controller
