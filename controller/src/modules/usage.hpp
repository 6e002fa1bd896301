// usage.hpp — the usage ledger: CPU- and node-seconds per job, node and interval.
//
// In:    heartbeats (each carries the step's cumulative CPU seconds and RSS on
//        its node, and the node's clock); the `usage` request.
// Out:   rows of the `usage` table per (job, node, minute): CPU seconds (the
//        growth of the cumulative counters), node seconds (time the job was
//        seen alive on the node: gaps between its heartbeats there, capped at
//        3 intervals so a silent node is not billed), peak RSS, samples;
//        written once per group (precommit). Minute rows older than
//        `usage_minute_days` are folded into hourly rows once an hour. The
//        `usage` answer: CPU-hours and node-hours per interval between two
//        times, for a job, user, account or study (non-admins: their own jobs).
// State: per step its newest sample, per (job, node) its newest heartbeat
//        time (both from the store after a restart), this group's sums.
// Fails: a heartbeat older than one already counted (a replay) adds
//        nothing; a counter that went down (a new attempt) counts from zero.
// This is what quotas, fair share and forecasting read (issues 13-15).
#pragma once

#include <map>
#include <tuple>

#include "core.hpp"

namespace vigil::controller {

class UsageModule : public Module {
 public:
  explicit UsageModule(Core& core);
  const char* name() const override { return "usage"; }
  static constexpr std::int64_t kMinute = 60;

 private:
  void on_heartbeat(const Event& e);
  Status flush();
  void compact(std::int64_t now);
  Result<json> query(const Caller& who, const json& req);
  Core& core_;
  struct Sample {
    std::int64_t ts_ns = 0;
    double cpu_s = 0;
    std::uint32_t restart = 0;
  };
  std::map<StepKey, Sample> last_;                                        // per step
  std::map<std::pair<std::uint32_t, std::string>, std::int64_t> node_seen_;  // (job, node) -> newest heartbeat
  std::map<std::tuple<std::uint32_t, std::string, std::int64_t>, Store::UsageRow> staged_;
  std::int64_t next_compact_ns_ = 0;
  std::int64_t compacted_to_s_ = 0;  // minute rows before this are folded (0: look at all once)
};

}  // namespace vigil::controller
