// checkpoint_plan.cpp — see checkpoint_plan.hpp.
#include "checkpoint_plan.hpp"

#include <algorithm>

namespace vigil::controller {

namespace {

bool overlaps(const std::vector<std::string>& job_nodes, const Maintenance& m) {
  if (m.nodes.empty()) return true;
  for (const std::string& n : job_nodes)
    if (std::find(m.nodes.begin(), m.nodes.end(), n) != m.nodes.end()) return true;
  return false;
}

std::string secs(std::time_t s) { return std::to_string(static_cast<long long>(s)) + " s"; }

}  // namespace

bool CheckpointPlanner::is_protected(const PlanJob& j) const {
  if (j.protect) return true;
  return cfg_.protect_min_time_limit_min > 0 && j.time_limit_min >= static_cast<std::uint32_t>(cfg_.protect_min_time_limit_min);
}

std::vector<PlanAction> CheckpointPlanner::tick(std::time_t now, const std::vector<PlanJob>& jobs,
                                                const std::vector<Maintenance>& maintenance) {
  std::vector<PlanAction> out;
  std::set<std::uint32_t> running;
  auto fire_once = [&](const PlanJob& j, const std::string& key) {
    return fired_.emplace(j.job, j.restart, key).second;
  };
  auto ask = [&](const PlanJob& j, const std::string& trigger, std::string reason) {
    out.push_back({PlanAction::Kind::checkpoint, j.job, j.restart, trigger, std::move(reason)});
  };

  for (const PlanJob& j : jobs) {
    running.insert(j.job);
    // Before the time limit.
    if (cfg_.before_end_s > 0 && j.end_time > now && j.start_time > 0 && j.end_time > j.start_time) {
      const std::time_t margin = std::min<std::time_t>(cfg_.before_end_s, (j.end_time - j.start_time) / 2);
      if (j.end_time - now <= margin && fire_once(j, "time_limit"))
        ask(j, "time_limit", "time limit in " + secs(j.end_time - now));
    }
    // Protected: never without a fresh verified checkpoint for long.
    if (cfg_.fresh_s > 0 && is_protected(j)) {
      const std::time_t newest = std::max(j.last_verified, j.start_time);
      auto asked = kept_fresh_.find(j.job);
      if (j.start_time > 0 && now - newest >= cfg_.fresh_s &&
          (asked == kept_fresh_.end() || now - asked->second >= cfg_.fresh_s)) {
        kept_fresh_[j.job] = now;
        ask(j, "protection",
            j.last_verified > 0 ? "protected: newest verified checkpoint is " + secs(now - j.last_verified) + " old"
                                : "protected: no verified checkpoint in " + secs(now - j.start_time) + " of running");
      }
    }
    // At preemption.
    if (cfg_.on_preemption && j.preempt_time > 0 && fire_once(j, "preempt:" + std::to_string(j.preempt_time)))
      ask(j, "preemption", "slurmctld is preempting the job" +
                               (is_protected(j) ? std::string(" (protected: checkpointing before it is stopped)") : ""));
    // Before maintenance.
    if (cfg_.before_maintenance_s > 0)
      for (const Maintenance& m : maintenance) {
        if (m.start <= now || m.start - now > cfg_.before_maintenance_s) continue;
        if (j.end_time != 0 && j.end_time <= m.start) continue;  // done before it starts
        if (!overlaps(j.nodes, m) || !fire_once(j, "maint:" + m.name)) continue;
        const bool prot = is_protected(j);
        ask(j, "maintenance",
            "maintenance reservation " + m.name + " starts in " + secs(m.start - now) +
                (prot ? " (protected: requeued once the checkpoint is verified)" : ""));
        if (prot && !waiting_.count(j.job)) waiting_[j.job] = {j.restart, now, m.name};
      }
  }

  // Protected jobs asked to checkpoint before maintenance: requeue once a
  // checkpoint reported after the request is verified; at the deadline, one
  // that is still fresh will do; otherwise leave the job undisturbed.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    const auto j = std::find_if(jobs.begin(), jobs.end(), [&](const PlanJob& x) { return x.job == it->first; });
    if (j == jobs.end() || j->restart != it->second.restart) {
      it = waiting_.erase(it);
      continue;
    }
    const Waiting& w = it->second;
    const std::string base = "protected job before maintenance reservation " + w.resv + ": ";
    if (j->last_verified >= w.asked) {
      out.push_back({PlanAction::Kind::requeue, j->job, j->restart, "maintenance",
                     base + "requeued after its checkpoint was verified"});
    } else if (now - w.asked >= cfg_.protect_wait_s) {
      if (j->last_verified > 0 && now - j->last_verified <= cfg_.fresh_s)
        out.push_back({PlanAction::Kind::requeue, j->job, j->restart, "maintenance",
                       base + "no new checkpoint within " + secs(cfg_.protect_wait_s) +
                           "; requeued from its verified checkpoint of " + secs(now - j->last_verified) + " ago"});
      else
        out.push_back({PlanAction::Kind::hold, j->job, j->restart, "maintenance",
                       base + "not requeued: no verified checkpoint younger than " + secs(cfg_.fresh_s)});
    } else {
      ++it;
      continue;
    }
    it = waiting_.erase(it);
  }

  std::erase_if(fired_, [&](const auto& f) { return !running.count(std::get<0>(f)); });
  std::erase_if(kept_fresh_, [&](const auto& kv) { return !running.count(kv.first); });
  return out;
}

}  // namespace vigil::controller
