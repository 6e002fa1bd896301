// liveness.cpp — see liveness.hpp.
#include "liveness.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace vigil::controller {

LivenessModule::LivenessModule(Core& core) : core_(core) {
  // Steps that were running when vigild stopped: watch them again. Their
  // plugins are backing off (up to 5 s between attempts) and will replay their
  // spools first, so they get a grace period before silence counts.
  if (auto open = core_.store.open_steps()) {
    const std::int64_t now = core_.clock();
    const std::int64_t grace = static_cast<std::int64_t>(core_.cfg.restart_grace_s) * 1'000'000'000;
    for (const auto& o : *open) core_.monitor.alive({o.job, o.step, o.node}, o.interval_s, now + grace);
    if (!open->empty()) spdlog::info("watching {} steps that were running before the restart", open->size());
  }
  core_.host.on_validate([this](const Event& e, uid_t, std::int64_t) {
    new_attempt(e);
    return std::nullopt;
  });
  core_.host.on_absorb({EventType::heartbeat});
  core_.host.on_event({EventType::job_start, EventType::step_start, EventType::heartbeat, EventType::task_start,
                       EventType::task_exit, EventType::checkpoint_signal, EventType::step_end, EventType::job_end,
                       EventType::step_silent, EventType::node_lost, EventType::node_recovered},
                      [this](const Event& e, std::int64_t, std::int64_t now) {
                        track(e, now);
                        note(e);
                      });
  core_.host.on_precommit([this] { return flush(); });
  core_.host.on_abort([this] { rows_.clear(); });
  core_.host.on_tick([this](std::int64_t now) { detect(now); });
  // The old job under a reused id (ADR 0017): its rows of this group are
  // written under it now, and its steps are no longer watched.
  core_.host.on_retire([this](std::uint32_t job, std::int64_t) {
    for (auto it = rows_.begin(); it != rows_.end();) {
      if (it->first.job != job) {
        ++it;
        continue;
      }
      if (auto s = core_.store.put_step(it->second); !s) spdlog::error("liveness: {}", s.error().what());
      it = rows_.erase(it);
    }
    std::erase_if(last_beat_, [job](const auto& kv) { return kv.first.job == job; });
    attempt_seen_.erase(job);
    for (const StepKey& k : core_.monitor.steps_of(job)) core_.monitor.ended(k);
  });
  core_.host.on_request("nodes", [this](const Caller&, const json&, Reply reply) {
    json arr = json::array();
    const std::int64_t now = core_.clock();
    for (const auto& n : core_.monitor.nodes())
      arr.push_back({{"node", n.node}, {"steps", n.steps},
                     {"heartbeat_age_s", std::max(0.0, static_cast<double>(now - n.last_ns) / 1e9)}, {"lost", n.lost}});
    reply(arr);
  });
}

// Signs of life (arrival time: vigild's clock).
void LivenessModule::track(const Event& e, std::int64_t now) {
  if (e.node.empty() || e.step == kNoStep) return;
  const StepKey key{e.job, e.step, e.node};
  switch (e.type) {
    case EventType::job_start:
    case EventType::step_start: {
      int interval = 0;
      if (e.attrs.contains("options") && e.attrs["options"].contains("heartbeat_s") &&
          e.attrs["options"]["heartbeat_s"].is_number_integer())
        interval = e.attrs["options"]["heartbeat_s"].get<int>();
      core_.monitor.alive(key, interval, now);
      break;
    }
    case EventType::heartbeat:
      core_.monitor.alive(key, e.attrs.value("interval_s", 0), now);
      break;
    case EventType::step_end:
    case EventType::job_end:
      core_.monitor.ended(key);
      break;
    case EventType::step_silent:
    case EventType::node_lost:
    case EventType::node_recovered:
      break;  // vigild's own verdicts, not signs of life
    default:
      core_.monitor.alive(key, 0, now);
      break;
  }
}

// The step's row: what the store keeps of its liveness (written at precommit).
void LivenessModule::note(const Event& e) {
  if (e.node.empty() || e.step == kNoStep) return;
  const StepKey key{e.job, e.step, e.node};
  auto it = rows_.find(key);
  if (it == rows_.end()) {
    Store::StepRow r;
    if (auto stored = core_.store.step_row(e.job, e.step, e.node)) {
      r = *stored;
      if (r.heartbeats > 0 && !last_beat_.count(key)) last_beat_[key] = r.last_ns;  // gaps across a restart count
    }
    r.job = e.job;
    r.step = e.step;
    r.node = e.node;
    it = rows_.emplace(key, std::move(r)).first;
  }
  Store::StepRow& r = it->second;
  switch (e.type) {
    case EventType::step_silent:
    case EventType::node_lost:
      r.silent = true;
      return;
    case EventType::node_recovered:
      r.silent = false;
      return;
    default:
      break;
  }
  if (r.started_ns == 0 || e.restart > r.restart) r.started_ns = e.ts_ns;
  r.restart = std::max(r.restart, e.restart);
  r.last_ns = std::max(r.last_ns, e.ts_ns);
  r.silent = false;
  if (e.type == EventType::step_end || e.type == EventType::job_end) r.ended_ns = e.ts_ns;
  if ((e.type == EventType::job_start || e.type == EventType::step_start) && e.attrs.contains("options") &&
      e.attrs["options"].contains("heartbeat_s") && e.attrs["options"]["heartbeat_s"].is_number_integer())
    r.interval_s = e.attrs["options"]["heartbeat_s"].get<int>();
  if (e.type != EventType::heartbeat) return;
  std::int64_t& prev = last_beat_[key];
  if (e.ts_ns <= prev) return;  // a replay of one already counted
  if (prev > 0) r.max_gap_ms = std::max(r.max_gap_ms, (e.ts_ns - prev) / 1'000'000);
  prev = e.ts_ns;
  r.heartbeats++;
  r.interval_s = e.attrs.value("interval_s", r.interval_s);
  if (e.attrs.contains("cpu_s") && e.attrs["cpu_s"].is_number()) r.cpu_s = e.attrs["cpu_s"].get<double>();
  // The peak: the last sample of a step is often taken as its tasks exit (0).
  if (e.attrs.contains("rss_bytes") && e.attrs["rss_bytes"].is_number_integer())
    r.rss_bytes = std::max(r.rss_bytes, e.attrs["rss_bytes"].get<std::int64_t>());
}

Status LivenessModule::flush() {
  for (const auto& [key, r] : rows_)
    if (auto s = core_.store.put_step(r); !s) return s;
  for (const auto& [key, r] : rows_)
    if (r.ended_ns) last_beat_.erase(key);
  rows_.clear();
  return ok_status();
}

// The first news of a job's next attempt (a higher restart count), before it
// is stored: the previous attempt's steps are no longer watched — their nodes
// may be dead (already handled) or their step_end may be spooled on a node
// while vigild was down; either way their silence is not this attempt's trouble.
void LivenessModule::new_attempt(const Event& e) {
  if (e.node.empty()) return;
  auto it = attempt_seen_.find(e.job);
  if (it == attempt_seen_.end()) {
    auto s = core_.store.latest(e.job, EventType::job_start);
    it = attempt_seen_.emplace(e.job, s ? s->event.restart : 0).first;
  }
  if (e.restart <= it->second) return;
  it->second = e.restart;
  for (const StepKey& k : core_.monitor.steps_of(e.job)) core_.monitor.ended(k);
}

// Between turns: report what went silent, on each affected job's timeline.
void LivenessModule::detect(std::int64_t now) {
  auto found = core_.monitor.tick(now);
  if (found.empty()) return;
  std::vector<Event> events;
  for (const Detection& d : found) {
    const double silent_s = static_cast<double>(now - d.silent_since_ns) / 1e9;
    EventType type = EventType::node_recovered;
    const char* what = "recovered";
    if (d.kind == Detection::Kind::node_lost) {
      type = EventType::node_lost;
      what = "lost";
      core_.counters.nodes_lost++;
      spdlog::warn("node {} lost: no sign of life from any of its {} steps for {:.1f} s", d.node, d.steps.size(),
                   silent_s);
      if (core_.cfg.drain_on_node_loss && core_.slurm) {
        char reason[128];
        std::snprintf(reason, sizeof reason, "vigil: no heartbeat for %.0f s", silent_s);
        if (auto st = core_.slurm->drain_node(d.node, reason)) {
          core_.counters.drains++;
          spdlog::warn("node {} drained in Slurm ({})", d.node, reason);
        } else {
          core_.counters.drain_failures++;
          spdlog::error("could not drain node {}: {}", d.node, st.error().message);
        }
      }
    } else if (d.kind == Detection::Kind::step_silent) {
      type = EventType::step_silent;
      what = "silent";
      core_.counters.steps_silent += d.steps.size();
      spdlog::warn("{} step(s) on node {} silent for {:.1f} s (node still alive)", d.steps.size(), d.node, silent_s);
    } else {
      spdlog::info("node {}: {} step(s) heard from again", d.node, d.steps.size());
    }
    for (const StepKey& k : d.steps) {
      Event e;
      e.id = new_event_id();
      e.type = type;
      e.ts_ns = now;
      e.job = k.job;
      e.step = k.step;
      e.node = k.node;
      e.attrs = {{"by", "vigild"}, {"what", what}, {"silent_s", silent_s}, {"last_sign_of_life_ns", d.silent_since_ns}};
      events.push_back(std::move(e));
    }
  }
  // One transaction: the detections, and whatever the modules do about them
  // (state changes, recovery decisions).
  core_.transaction("recording detections", [&] {
    for (const Event& e : events) {
      if (auto r = core_.store.insert(e, 0, now); !r) {
        spdlog::error("cannot record detection: {}", r.error().what());
        return false;
      }
      core_.dispatch(e, core_.store.last_insert_seq(), now);
    }
    return true;
  });
}

}  // namespace vigil::controller
