// retention.hpp — which verified checkpoints to delete: retention and storage
// budgets, as pure logic.
//
// Per job, the newest `keep` verified checkpoints stay (the job's
// --vigil-keep-checkpoints, else the site's `checkpoint_keep`; 0 keeps all).
// Per user, the checkpoints that stay may use at most `user_budget_bytes`;
// beyond it the oldest go first, across all the user's jobs. The newest
// verified checkpoint of a job is never deleted, whatever the budget says: it
// is what a restart resumes from. A path that a newer entry of the same job
// still names (a simulation that overwrites one file) is forgotten, not
// deleted. docs/adr/0013-checkpoint-strategies.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ledger.hpp"

namespace vigil::controller {

struct RetentionConfig {
  int keep = 0;                        // per job; 0: keep every verified checkpoint
  std::uint64_t user_budget_bytes = 0;  // per user; 0: no budget
};

struct JobCheckpoints {
  std::uint32_t job = 0;
  int keep = -1;                          // the job's own setting; -1: the site's
  std::vector<CheckpointEntry> verified;  // oldest first
};

struct Prune {
  std::uint32_t job = 0;
  CheckpointEntry entry;
  bool delete_file = true;  // false: a newer entry names the same file
  std::string reason;
};

struct RetentionPlan {
  std::vector<Prune> prune;
  std::uint64_t kept_bytes = 0;   // what the user keeps after the plan
  bool over_budget = false;       // still over: only newest checkpoints are left
};

// `jobs`: every job of one user that has verified checkpoints on disk.
RetentionPlan plan_retention(const RetentionConfig& cfg, const std::vector<JobCheckpoints>& jobs);

}  // namespace vigil::controller
