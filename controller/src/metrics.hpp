// metrics.hpp — vigild's Prometheus metrics: every metric declared in one list.
//
// The intake thread updates counters and histograms (atomics) and publishes a
// snapshot of what is not atomic once per loop turn; /metrics renders that
// snapshot plus a job-state count read through the HTTP thread's own
// read-only database connection. Names follow Prometheus conventions.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vigil::controller {

// Fixed-bucket latency histogram (seconds), lock-free to observe.
class Histogram {
 public:
  // 1 ms .. 1 s: the ack budget is 50 ms (p99), so resolution sits around it.
  static constexpr std::array<double, 10> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
  void observe(double seconds);
  struct Copy {
    std::array<std::uint64_t, kBounds.size() + 1> buckets{};  // last: +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Copy copy() const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_us_{0};
};

struct NodeGauge {
  std::string node;
  double heartbeat_age_s = 0;
  std::size_t steps = 0;
  bool lost = false;
};

// What /metrics and /v1/health show; published by the intake thread.
struct IntakeSnapshot {
  std::int64_t uptime_s = 0;
  std::map<std::string, std::uint64_t> counters;  // name -> total
  std::map<std::string, std::uint64_t> rejected;  // reason -> total
  std::uint64_t sessions = 0;
  std::uint64_t watched_steps = 0;
  std::uint64_t last_turn_frames = 0;
  double oldest_frame_wait_s = 0;  // in the last turn: receipt -> ack
  std::vector<NodeGauge> nodes;
  Histogram::Copy ack_latency;
};

std::string render_prometheus(const IntakeSnapshot& s, const std::map<std::string, std::int64_t>& jobs_by_state);

}  // namespace vigil::controller
