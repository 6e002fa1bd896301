// checkpoint_planning.cpp — see checkpoint_planning.hpp.
#include "checkpoint_planning.hpp"

#include <spdlog/spdlog.h>

namespace vigil::controller {

CheckpointPlanning::CheckpointPlanning(Core& core, CheckpointLedger& ledger, RecoveryModule* recovery)
    : core_(core), ledger_(ledger), recovery_(recovery) {
  core_.host.on_tick([this](std::int64_t now) { tick(now); });
  core_.host.on_request("checkpoint", [this](const Caller& who, const json& req, Reply reply) {
    request(who, req, std::move(reply));
  });
}

// A user asks the job's running steps to checkpoint now.
void CheckpointPlanning::request(const Caller& who, const json& req, Reply reply) {
  if (!req.contains("job") || !req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
    return reply(make_error(Errc::malformed, "checkpoint request needs 'job'"));
  const auto job = req["job"].get<std::uint32_t>();
  if (!who.admin && core_.store.job_owner(job) != who.uid)
    return reply(make_error(Errc::denied, "job " + std::to_string(job) + " is not yours"));
  auto out = core_.checkpoint_command(job, "request");
  if (out) spdlog::info("job {}: checkpoint requested by uid {} (command {})", job, who.uid, (*out)["command"].dump());
  reply(std::move(out));
}

// Once a second: the running jobs (slurmctld's view) against the strategies.
void CheckpointPlanning::tick(std::int64_t now) {
  if (!core_.slurm || core_.cfg.reconcile_interval_s <= 0 || now < next_ns_) return;
  next_ns_ = now + 1'000'000'000;
  std::vector<PlanJob> jobs;
  for (const SlurmJob& j : core_.view.running) {
    const JobFacts& info = core_.facts(j.job);
    if (!info.started) continue;  // not (yet) a Vigil job: nothing to signal
    PlanJob p;
    p.job = j.job;
    p.restart = j.restart;
    p.nodes = j.node_names;
    p.start_time = j.start_time;
    p.end_time = j.end_time;
    p.preempt_time = j.preempt_time;
    p.time_limit_min = j.time_limit_min >= 0xfffffffeu ? 0 : j.time_limit_min;
    p.protect = info.protect;
    if (const auto& l = ledger_.verified(j.job); !l.empty()) p.last_verified = l.back().reported_ns / 1'000'000'000;
    jobs.push_back(std::move(p));
  }
  std::vector<Maintenance> maint;
  for (const SlurmReservation& r : core_.view.reservations)
    if (r.maintenance) maint.push_back({r.name, r.start_time, r.end_time, r.node_names});
  PlanConfig pc;
  pc.before_end_s = core_.cfg.checkpoint_before_end_s;
  pc.before_maintenance_s = core_.cfg.checkpoint_before_maintenance_s;
  pc.on_preemption = core_.cfg.checkpoint_on_preemption;
  pc.fresh_s = core_.cfg.protect_fresh_s;
  pc.protect_wait_s = core_.cfg.protect_wait_s;
  pc.protect_min_time_limit_min = core_.cfg.protect_min_time_limit_min;
  planner_.configure(pc);
  for (const PlanAction& a : planner_.tick(static_cast<std::time_t>(now / 1'000'000'000), jobs, maint))
    carry_out(a, now);
}

void CheckpointPlanning::carry_out(const PlanAction& a, std::int64_t now) {
  switch (a.kind) {
    case PlanAction::Kind::checkpoint: {
      auto r = core_.checkpoint_command(a.job, a.trigger);
      json attrs = {{"by", "vigild"}, {"trigger", a.trigger}, {"reason", a.reason}, {"restart", a.restart}};
      if (r) attrs["command"] = (*r)["command"];
      else attrs["error"] = r.error().message;
      spdlog::info("job {}: checkpoint asked ({}): {}{}", a.job, a.trigger, a.reason,
                   r ? "" : " — " + r.error().message);
      core_.record(a.job, EventType::checkpoint_requested, std::move(attrs), now);
      break;
    }
    case PlanAction::Kind::requeue:
      if (recovery_) {
        recovery_->planned_requeue(a.job, a.restart, a.trigger, a.reason, now);
        break;
      }
      [[fallthrough]];  // no Slurm connection: nothing can requeue it
    case PlanAction::Kind::hold:
      spdlog::warn("job {}: {}", a.job, a.reason);
      core_.record(a.job, EventType::recovery,
                   {{"by", "vigild"}, {"action", "hold"}, {"trouble", a.trigger}, {"restart", a.restart},
                    {"reason", a.reason}},
                   now);
      break;
  }
}

}  // namespace vigil::controller
