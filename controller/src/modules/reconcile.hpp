// reconcile.hpp — slurmctld's view of the jobs, applied to vigild's (ADR 0007).
//
// In:    the job table from slurmctld (incremental: only when it changed) and
//        its reservations, fetched on a thread of this module's own every
//        `reconcile_interval_s`.
// Out:   an earlier job archived when slurmctld lists a new job under its id
//        (identity.hpp: a different submit time without a requeue); each
//        job's `submit` event (what was requested: account, partition,
//        resources; stored once per job), ownership, the Slurm state and restart
//        count on the job row, state changes (Slurm has the last word on how a
//        job ended); Core::view (running jobs, reservations) for the planner;
//        the changed jobs to on_slurm_view (recovery reacts to NODE_FAIL).
//        Core::after_slurm_view: a round fetched now (not at the next
//        interval), its callbacks run once that round is applied.
// State: the thread, what it fetched and has not yet applied, the last update
//        time slurmctld reported; callbacks waiting for a round.
// Fails: slurmctld unreachable: warning, `reconcile_errors` counted, retried
//        next interval; the intake is never blocked by it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core.hpp"

namespace vigil::controller {

class ReconcileModule : public Module {
 public:
  explicit ReconcileModule(Core& core);
  ~ReconcileModule() override;
  const char* name() const override { return "reconcile"; }
  void start();  // the thread; not in tests that drive apply_jobs() themselves
  void stop();
  // slurmctld's jobs, applied: on the intake thread (tick), or by a test.
  void apply_jobs(const std::vector<SlurmJob>& jobs, std::int64_t now);

 private:
  void loop();
  void apply(std::int64_t now);
  void record_submit(const SlurmJob& j, std::int64_t now);
  bool failed_by_policy(std::uint32_t job);
  bool being_retried(std::uint32_t job, std::uint32_t slurm_restart);
  Core& core_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
  void refresh(std::function<void()> then, bool force);
  std::vector<SlurmJob> pending_;  // under mu_
  std::time_t since_ = 0;          // under mu_
  bool wake_ = false;              // under mu_: fetch now
  std::uint64_t rounds_ = 0;       // under mu_: rounds fetched (ok or not)
  bool fetching_ = false;          // under mu_: a round is under way
  using SteadyClock = std::chrono::steady_clock;
  SteadyClock::time_point round_started_;  // under mu_: when the newest round began
  std::uint64_t applied_ = 0;              // under mu_: rounds_ as of the last apply()
  static constexpr std::chrono::milliseconds kFresh{1000};
  std::vector<std::pair<std::uint64_t, std::function<void()>>> waiting_;  // round needed -> callback
  Core::ClusterView fetched_;      // under mu_
  bool fetched_new_ = false;       // under mu_
};

}  // namespace vigil::controller
