// retention.cpp — see retention.hpp.
#include "retention.hpp"

#include <algorithm>
#include <set>

namespace vigil::controller {

RetentionPlan plan_retention(const RetentionConfig& cfg, const std::vector<JobCheckpoints>& jobs) {
  RetentionPlan plan;
  struct Kept {
    std::uint32_t job;
    const CheckpointEntry* entry;
    bool newest;
  };
  std::vector<Kept> kept;
  // The paths each job keeps: a pruned entry naming one of them is only forgotten.
  std::map<std::uint32_t, std::multiset<std::string>> kept_paths;

  auto drop = [&](std::uint32_t job, const CheckpointEntry& e, const std::string& reason) {
    const bool shared = kept_paths[job].count(e.path) > 0;
    plan.prune.push_back({job, e, !shared, shared ? reason + "; the file is kept: a newer checkpoint has the same path"
                                                  : reason});
  };

  for (const JobCheckpoints& j : jobs) {
    const int keep = j.keep >= 0 ? j.keep : cfg.keep;
    const std::size_t n = j.verified.size();
    const std::size_t first_kept = keep > 0 && n > static_cast<std::size_t>(keep) ? n - keep : 0;
    for (std::size_t i = first_kept; i < n; ++i) {
      kept.push_back({j.job, &j.verified[i], i + 1 == n});
      kept_paths[j.job].insert(j.verified[i].path);
    }
    for (std::size_t i = 0; i < first_kept; ++i)
      drop(j.job, j.verified[i], "retention: the job keeps its newest " + std::to_string(keep));
  }

  for (const Kept& k : kept) plan.kept_bytes += k.entry->bytes;
  if (cfg.user_budget_bytes > 0 && plan.kept_bytes > cfg.user_budget_bytes) {
    // Oldest first across the user's jobs; a job's newest stays.
    std::vector<const Kept*> order;
    for (const Kept& k : kept)
      if (!k.newest) order.push_back(&k);
    std::stable_sort(order.begin(), order.end(),
                     [](const Kept* a, const Kept* b) { return a->entry->reported_ns < b->entry->reported_ns; });
    for (const Kept* k : order) {
      if (plan.kept_bytes <= cfg.user_budget_bytes) break;
      auto& paths = kept_paths[k->job];
      paths.erase(paths.find(k->entry->path));
      plan.kept_bytes -= k->entry->bytes;
      drop(k->job, *k->entry,
           "storage budget: the user's checkpoints exceed " + std::to_string(cfg.user_budget_bytes) + " bytes");
    }
    plan.over_budget = plan.kept_bytes > cfg.user_budget_bytes;
  }
  return plan;
}

}  // namespace vigil::controller
