// timeline_retention.cpp — see timeline_retention.hpp.
#include "timeline_retention.hpp"

#include <spdlog/spdlog.h>

namespace vigil::controller {

namespace {
constexpr std::int64_t kS = 1'000'000'000;
}

TimelineRetention::TimelineRetention(Core& core) : core_(core) {
  core_.host.on_tick([this](std::int64_t now) {
    if (now >= next_ns_) sweep(now);
  });
}

void TimelineRetention::sweep(std::int64_t now) {
  next_ns_ = now + 3600 * kS;
  if (core_.cfg.timeline_keep_days <= 0) return;
  const std::int64_t before = now - static_cast<std::int64_t>(core_.cfg.timeline_keep_days) * 86400 * kS;
  int budget = kRowsPerSweep;
  std::int64_t deleted = 0;
  std::vector<JobKey> finished;
  const bool ok = core_.transaction("timeline retention", [&] {
    auto jobs = core_.store.jobs_to_forget(before, 100);
    if (!jobs) {
      spdlog::error("timeline retention: {}", jobs.error().what());
      return false;
    }
    for (JobKey job : *jobs) {
      bool done = false;
      auto n = core_.store.forget_timeline(job, now, budget, done);
      if (!n) {
        spdlog::error("timeline retention: job key {}: {}", job, n.error().what());
        return false;
      }
      deleted += *n;
      budget -= static_cast<int>(*n);
      if (done) finished.push_back(job);
      if (budget <= 0) break;
    }
    return true;
  });
  if (!ok) return;
  core_.counters.timeline_events_deleted += static_cast<std::uint64_t>(deleted);
  core_.counters.timelines_forgotten += finished.size();
  for (JobKey job : finished)
    spdlog::info("job key {}: timeline deleted, {} days after it ended (timeline_keep_days)", job,
                 core_.cfg.timeline_keep_days);
  if (budget <= 0) next_ns_ = now + 10 * kS;  // a backlog: keep going, a bounded sweep at a time
}

}  // namespace vigil::controller
