// checkpoint_retention.cpp — see checkpoint_retention.hpp.
#include "checkpoint_retention.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>

#include "retention.hpp"

namespace vigil::controller {

CheckpointRetention::CheckpointRetention(Core& core, CheckpointLedger& ledger) : core_(core), ledger_(ledger) {
  core_.host.on_event({EventType::checkpoint_verified}, [this](const Event& e, std::int64_t, std::int64_t now) {
    if (e.attrs.value("ok", false)) run(e.job, false, now);
  });
  core_.host.on_event({EventType::checkpoint}, [this](const Event& e, std::int64_t, std::int64_t now) {
    if (e.attrs.value("failed", false)) failed_write(e, now);
  });
  core_.host.on_digest(DigestWorker::Task::Kind::prune, [this](DigestWorker::Done& d, std::int64_t now) {
    pruned(d.job, d.entry, d.why, d.error.empty(), d.error, now);
  });
}

// After a verified checkpoint (or a failed write for want of space): delete
// what retention and the user's storage budget no longer keep.
void CheckpointRetention::run(std::uint32_t job, bool disk_full, std::int64_t now) {
  const JobFacts& info = core_.facts(job);
  const uid_t uid = info.owner.uid;
  const gid_t gid = info.owner.gid;
  RetentionConfig rc;
  rc.keep = core_.cfg.checkpoint_keep;
  rc.user_budget_bytes = core_.cfg.checkpoint_budget_mb_per_user << 20;
  if (rc.keep == 0 && rc.user_budget_bytes == 0 && info.keep < 0 && !disk_full) return;  // keep everything
  std::vector<JobCheckpoints> mine;
  auto add = [&](std::uint32_t j) {
    const auto& l = ledger_.verified(j);
    if (l.empty()) return;
    // Out of space: keep only the newest of the job that could not write.
    const int keep = disk_full && j == job ? 1 : core_.facts(j).keep;
    mine.push_back({j, keep, l});
  };
  add(job);
  if (rc.user_budget_bytes > 0 && uid != 0)
    if (auto rows = core_.store.jobs(uid, 10000))
      for (const JobRow& r : *rows)
        if (r.job != job) add(r.job);
  const RetentionPlan plan = plan_retention(rc, mine);
  if (plan.over_budget)
    spdlog::warn("uid {}: checkpoints still over the budget ({} bytes): only newest ones are left", uid,
                 plan.kept_bytes);
  for (const Prune& p : plan.prune) {
    const std::string reason = disk_full && p.job == job ? "disk full: " + p.reason : p.reason;
    ledger_.forget(p.job, p.entry.path, p.entry.sha256);
    if (!p.delete_file) {
      pruned(p.job, p.entry, reason, false, "", now);
      continue;
    }
    DigestWorker::Task t;
    t.kind = DigestWorker::Task::Kind::prune;
    t.token = core_.token();
    t.job = p.job;
    t.owner = uid;
    t.group = gid;
    t.entry = p.entry;
    t.why = reason;
    core_.digests.submit(std::move(t));
  }
}

// The simulation could not write a checkpoint (vigil_report_checkpoint_failed):
// the report is on the timeline; the job goes on. Out of space, the job's
// older verified checkpoints are pruned so the next one has room.
void CheckpointRetention::failed_write(const Event& e, std::int64_t now) {
  const int err = e.attrs.value("errno", 0);
  core_.counters.checkpoints_failed++;
  spdlog::warn("job {}: checkpoint {} at step {} could not be written: {}", e.job,
               e.attrs.value("path", std::string("?")), e.attrs.value("step", std::int64_t{-1}),
               e.attrs.value("error", std::string("?")));
  if (err == ENOSPC || err == EDQUOT) run(e.job, true, now);
}

// The pruned checkpoint's report and verification leave the timeline; this
// event says all they said (ADR 0019), so a months-long job's history grows
// by one event per checkpoint, not three.
void CheckpointRetention::pruned(std::uint32_t job, const CheckpointEntry& c, const std::string& why, bool deleted,
                                 const std::string& error, std::int64_t now) {
  json a = {{"by", "vigild"}, {"path", c.path}, {"sha256", c.sha256}, {"step", c.step},
            {"bytes", c.bytes}, {"reason", why}, {"deleted", deleted}, {"sim_t", c.sim_time},
            {"node", c.node}, {"restart", c.restart}, {"reported_ns", c.reported_ns}};
  if (!error.empty()) a["error"] = error;
  if (error.empty()) spdlog::info("job {}: checkpoint {} pruned: {}", job, c.path, why);
  else spdlog::warn("job {}: checkpoint {} not deleted: {}", job, c.path, error);
  core_.transaction("checkpoint_pruned", [&] {
    if (c.report_seq > 0 || c.verified_seq > 0) {
      auto folded = core_.store.fold_checkpoint(JobKey{job}, c.report_seq, c.verified_seq);
      if (!folded) {
        spdlog::error("job {}: {}", job, folded.error().what());
        return false;
      }
      a["folded"] = *folded;
    }
    return core_.record(job, EventType::checkpoint_pruned, std::move(a), now) > 0;
  });
}

}  // namespace vigil::controller
