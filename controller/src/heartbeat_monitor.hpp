// heartbeat_monitor.hpp — who has gone silent: pure logic over an injected clock.
//
// Every (job, step, node) that started and has not ended is watched. Its
// deadline is the last sign of life plus `missed` heartbeat intervals (default
// 2: ≤ 10 s at the 5 s default interval, ≤ 2 s at 1 s). tick() reports each
// newly silent step once; when *every* watched step on a node is silent the node
// is reported lost instead (a dead node, not one hung step). A step that speaks
// again is reported recovered. Time is whatever the caller says it is, so the
// same code runs live, in tests and in the trace simulator.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace vigil::controller {

struct StepKey {
  std::uint32_t job = 0;
  std::uint32_t step = 0;
  std::string node;
  auto operator<=>(const StepKey&) const = default;
};

struct Detection {
  enum class Kind { step_silent, node_lost, recovered } kind;
  std::string node;
  std::vector<StepKey> steps;       // the steps concerned
  std::int64_t silent_since_ns = 0; // last sign of life (for step_silent/node_lost)
  std::int64_t detected_ns = 0;
};

class HeartbeatMonitor {
 public:
  explicit HeartbeatMonitor(int missed = 2) : missed_(missed) {}
  // A sign of life (start, heartbeat, task event) at time `now_ns` (arrival).
  // `interval_s` is the step's heartbeat interval as the plugin reported it
  // (0: unknown in this event, keep what we know).
  void alive(const StepKey& k, int interval_s, std::int64_t now_ns);
  void ended(const StepKey& k);
  std::vector<Detection> tick(std::int64_t now_ns);

  struct NodeView {
    std::string node;
    std::size_t steps = 0;
    std::int64_t last_ns = 0;   // newest sign of life of any step on the node
    bool lost = false;
  };
  std::vector<NodeView> nodes() const;
  std::size_t watched() const { return steps_.size(); }
  std::vector<StepKey> steps_of(std::uint32_t job) const;

 private:
  struct Watch {
    int interval_s = 5;
    std::int64_t last_ns = 0;
    bool silent = false;
  };
  int missed_;
  std::map<StepKey, Watch> steps_;
  std::map<std::string, bool> node_lost_;
};

}  // namespace vigil::controller
