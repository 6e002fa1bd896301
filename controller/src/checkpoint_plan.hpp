// checkpoint_plan.hpp — when vigild asks a running job to checkpoint, and when
// it requeues a protected job: the checkpoint strategies, as pure logic.
//
// Besides the job's own cadence (--vigil-checkpoint, timed by the plugin) and
// requests by hand (`vigil checkpoint`), vigild asks for a checkpoint:
//   - before the time limit: when the job has `before_end` left (at most half
//     its time limit, so a short job is not asked at its start);
//   - before a maintenance reservation (Slurm flag MAINT) that covers one of
//     the job's nodes and starts before the job would end: `before_maintenance`
//     ahead of its start;
//   - at preemption: as soon as slurmctld has begun preempting the job
//     (preempt_time set; the job's GraceTime is the time it has to write it).
// Each trigger fires once per attempt.
//
// Long-run protection (--vigil-protect, or site policy by time limit): a
// protected job is kept with a verified checkpoint at most `fresh` old (it is
// asked for one, trigger "protection", whenever its newest is older), so
// whatever interrupts it — preemption, which Slurm does not let anyone veto,
// included — costs at most that much work. A protected job that meets a
// maintenance reservation is checkpointed and then
// requeued cleanly — but only once a fresh verified checkpoint exists (one
// reported after the request, or at the deadline one younger than
// `fresh`). Without one it is left alone ("hold"), and the decision says why.
// docs/adr/0013-checkpoint-strategies.md.
#pragma once

#include <cstdint>
#include <ctime>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace vigil::controller {

struct PlanConfig {
  int before_end_s = 300;            // 0: no checkpoint before the time limit
  int before_maintenance_s = 600;    // 0: none before maintenance
  bool on_preemption = true;
  int fresh_s = 900;                 // a verified checkpoint this young is fresh
  int protect_wait_s = 120;          // how long a protected job gets to answer before maintenance
  int protect_min_time_limit_min = 0;  // site policy: protect jobs this long (0: only --vigil-protect)
};

// One running job as slurmctld and the ledger see it.
struct PlanJob {
  std::uint32_t job = 0;
  std::uint32_t restart = 0;
  std::vector<std::string> nodes;
  std::time_t start_time = 0, end_time = 0;  // end_time 0: no limit known
  std::time_t preempt_time = 0;              // 0: not being preempted
  std::uint32_t time_limit_min = 0;          // 0: unknown / infinite
  bool protect = false;                      // --vigil-protect
  std::time_t last_verified = 0;             // newest verified checkpoint's report time; 0: none
};

struct Maintenance {
  std::string name;
  std::time_t start = 0, end = 0;
  std::vector<std::string> nodes;  // empty: every node
};

struct PlanAction {
  enum class Kind { checkpoint, requeue, hold } kind = Kind::checkpoint;
  std::uint32_t job = 0;
  std::uint32_t restart = 0;
  std::string trigger;  // "time_limit", "maintenance", "preemption"
  std::string reason;   // for the timeline
};

class CheckpointPlanner {
 public:
  explicit CheckpointPlanner(PlanConfig cfg = {}) : cfg_(cfg) {}
  void configure(const PlanConfig& cfg) { cfg_ = cfg; }
  // `jobs`: the running jobs now. Jobs that are gone are forgotten.
  std::vector<PlanAction> tick(std::time_t now, const std::vector<PlanJob>& jobs,
                               const std::vector<Maintenance>& maintenance);
  bool is_protected(const PlanJob& j) const;

 private:
  struct Waiting {
    std::uint32_t restart = 0;
    std::time_t asked = 0;
    std::string resv;
  };
  PlanConfig cfg_;
  std::set<std::tuple<std::uint32_t, std::uint32_t, std::string>> fired_;  // (job, restart, trigger key)
  std::map<std::uint32_t, Waiting> waiting_;  // protected jobs asked to checkpoint before maintenance
  std::map<std::uint32_t, std::time_t> kept_fresh_;  // protected job -> when last asked to stay fresh
};

}  // namespace vigil::controller
