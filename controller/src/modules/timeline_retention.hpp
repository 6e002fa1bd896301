// timeline_retention.hpp — a finished job's timeline leaves the store
// `timeline_keep_days` after it ended (docs/adr/0020-timeline-retention.md).
//
// In:    ticks. Once an hour (every 10 s while there is a backlog) it asks the
//        store for jobs that ended (or were archived under a reused id) more
//        than timeline_keep_days ago, whose timelines are still stored and
//        whose result values are all in their dumps.
// Out:   their events and per-node step rows deleted, at most kRowsPerSweep
//        rows a sweep (one transaction), so a job with a hundred million
//        events costs the same per sweep as one with a hundred; the job row
//        records when (`timeline_forgotten_ns`, shown by `vigil show`); job
//        rows, transitions and usage stay. Counted: vigil_timelines_forgotten_total,
//        vigil_timeline_events_deleted_total; a log line per job.
// State: when the next sweep is due.
// Fails: a store error is logged and the sweep is rolled back; the next one
//        tries again. timeline_keep_days 0 turns it off.
#pragma once

#include "core.hpp"

namespace vigil::controller {

class TimelineRetention : public Module {
 public:
  explicit TimelineRetention(Core& core);
  const char* name() const override { return "timeline_retention"; }
  static constexpr int kRowsPerSweep = 20000;

 private:
  void sweep(std::int64_t now);
  Core& core_;
  std::int64_t next_ns_ = 0;
};

}  // namespace vigil::controller
