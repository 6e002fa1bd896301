// heartbeat_monitor.cpp — see heartbeat_monitor.hpp.
#include "heartbeat_monitor.hpp"

namespace vigil::controller {

void HeartbeatMonitor::alive(const StepKey& k, int interval_s, std::int64_t now_ns) {
  auto [it, fresh] = steps_.try_emplace(k);
  Watch& w = it->second;
  if (interval_s > 0) w.interval_s = interval_s;
  else if (fresh) w.interval_s = 5;  // Vigil's default until the step tells us
  if (now_ns > w.last_ns) w.last_ns = now_ns;
}

void HeartbeatMonitor::ended(const StepKey& k) { steps_.erase(k); }

std::vector<Detection> HeartbeatMonitor::tick(std::int64_t now_ns) {
  std::vector<Detection> out;
  // Group by node: a node is lost only if all of its watched steps are silent.
  std::map<std::string, std::vector<std::map<StepKey, Watch>::iterator>> by_node;
  for (auto it = steps_.begin(); it != steps_.end(); ++it) by_node[it->first.node].push_back(it);
  for (auto& [node, its] : by_node) {
    std::vector<StepKey> newly_silent, recovered;
    std::size_t silent = 0;
    std::int64_t newest = 0;
    for (auto it : its) {
      Watch& w = it->second;
      const std::int64_t deadline = w.last_ns + static_cast<std::int64_t>(missed_) * w.interval_s * 1'000'000'000LL;
      const bool now_silent = now_ns >= deadline;
      if (now_silent && !w.silent) newly_silent.push_back(it->first);
      if (!now_silent && w.silent) recovered.push_back(it->first);
      w.silent = now_silent;
      silent += now_silent;
      newest = std::max(newest, w.last_ns);
    }
    bool& lost = node_lost_[node];
    const bool all_silent = silent == its.size();
    if (all_silent && !lost) {
      std::vector<StepKey> all;
      for (auto it : its) all.push_back(it->first);
      out.push_back({Detection::Kind::node_lost, node, all, newest, now_ns});
      lost = true;
    } else if (!all_silent) {
      if (lost) {
        lost = false;
        out.push_back({Detection::Kind::recovered, node, recovered, newest, now_ns});
      } else if (!recovered.empty()) {
        out.push_back({Detection::Kind::recovered, node, recovered, newest, now_ns});
      }
      if (!newly_silent.empty()) out.push_back({Detection::Kind::step_silent, node, newly_silent, newest, now_ns});
    }
  }
  // Nodes with no watched step left are forgotten (their steps ended).
  for (auto it = node_lost_.begin(); it != node_lost_.end();)
    it = by_node.count(it->first) ? std::next(it) : node_lost_.erase(it);
  return out;
}

std::vector<StepKey> HeartbeatMonitor::steps_of(std::uint32_t job) const {
  std::vector<StepKey> out;
  for (auto it = steps_.lower_bound(StepKey{job, 0, ""}); it != steps_.end() && it->first.job == job; ++it)
    out.push_back(it->first);
  return out;
}

std::vector<HeartbeatMonitor::NodeView> HeartbeatMonitor::nodes() const {
  std::map<std::string, NodeView> m;
  for (const auto& [k, w] : steps_) {
    NodeView& v = m[k.node];
    v.node = k.node;
    v.steps++;
    v.last_ns = std::max(v.last_ns, w.last_ns);
  }
  std::vector<NodeView> out;
  for (auto& [node, v] : m) {
    auto lost = node_lost_.find(node);
    v.lost = lost != node_lost_.end() && lost->second;
    out.push_back(v);
  }
  return out;
}

}  // namespace vigil::controller
