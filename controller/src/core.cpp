// core.cpp — see core.hpp.
#include "core.hpp"

#include <pwd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace vigil::controller {

std::int64_t wall_clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint64_t CommandQueue::add(std::uint32_t job, const std::string& kind, const std::string& reason,
                                std::vector<StepKey> targets, std::int64_t now) {
  Pending p;
  p.cmd = {next_id_++, kind, reason};
  p.job = job;
  p.created_ns = now;
  p.targets = std::move(targets);
  const std::uint64_t id = p.cmd.id;
  pending_.push_back(std::move(p));
  return id;
}

std::vector<Command> CommandQueue::take_for(const std::vector<Event>& batch, std::int64_t now) {
  std::vector<Command> out;
  if (pending_.empty()) return out;
  std::erase_if(pending_, [&](const Pending& c) { return c.targets.empty() || now - c.created_ns > kTtl; });
  for (const Event& e : batch) {
    if (e.step == kNoStep || e.node.empty()) continue;
    for (Pending& c : pending_) {
      if (c.job != e.job) continue;
      auto t = std::find(c.targets.begin(), c.targets.end(), StepKey{e.job, e.step, e.node});
      if (t == c.targets.end()) continue;
      out.push_back(c.cmd);
      c.targets.erase(t);
    }
  }
  return out;
}

Core::Core(Config c, Store& s, Clock k, SlurmControl* sc)
    : cfg(std::move(c)), store(s), clock(std::move(k)), slurm(sc), monitor(cfg.heartbeat_missed) {
  // A job's (next attempt's) start: what is known of it is read again.
  host.on_event({EventType::job_start, EventType::step_start}, [this](const Event& e, std::int64_t, std::int64_t) {
    if (auto it = facts_.find(e.job); it != facts_.end() && (e.type == EventType::job_start || !it->second.started))
      facts_.erase(it);
  });
}

void Core::dispatch(const Event& e, std::int64_t seq, std::int64_t now) {
  if (!host.wants(e.type)) return;
  if (dispatching_) {
    queue_.push_back({e, seq});
    return;
  }
  dispatching_ = true;
  host.event(e, seq, now);
  while (!queue_.empty()) {
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    host.event(q.event, q.seq, now);
  }
  dispatching_ = false;
}

bool Core::transaction(const char* what, const std::function<bool()>& f) {
  if (in_txn) return f();
  if (auto b = store.begin(); !b) {
    spdlog::error("{}: {}", what, b.error().what());
    return false;
  }
  in_txn = true;
  const bool ok = f();
  in_txn = false;
  if (ok) {
    if (auto p = host.precommit(); !p) {
      spdlog::error("{}: {}", what, p.error().what());
    } else if (auto c = store.commit(); c) {
      host.committed();
      return true;
    } else {
      spdlog::error("{}: {}", what, c.error().what());
    }
  }
  store.rollback();
  host.aborted();
  return false;
}

std::int64_t Core::record(std::uint32_t job, EventType type, json attrs, std::int64_t now) {
  Event e;
  e.id = new_event_id();
  e.type = type;
  e.ts_ns = now;
  e.job = job;
  e.attrs = std::move(attrs);
  std::int64_t seq = 0;
  const bool ok = transaction(event_type_name(type), [&] {
    if (auto r = store.insert(e, 0, now); !r) {
      spdlog::error("cannot record {}: {}", event_type_name(type), r.error().what());
      return false;
    }
    seq = store.last_insert_seq();
    dispatch(e, seq, now);
    return true;
  });
  return ok ? seq : 0;
}

void Core::lifecycle(std::uint32_t job, const LifecycleInput& in, std::int64_t now) {
  transaction("lifecycle", [&] {
    if (auto s = store.ensure_job(job, now); !s) {
      spdlog::error("{}", s.error().what());
      return false;
    }
    auto cur = store.job_state(job);
    if (!cur) return true;
    const JobState from = job_state_from_name(cur->first).value_or(JobState::submitted);
    auto t = next_state(from, in);
    if (!t) return true;
    if (auto s = store.transition(job, job_state_name(from), job_state_name(t->to), t->reason, now); !s) {
      spdlog::error("{}", s.error().what());
      return false;
    }
    counters.transitions++;
    spdlog::info("job {}: {} -> {} ({})", job, job_state_name(from), job_state_name(t->to), t->reason);
    if (auto it = facts_.find(job); it != facts_.end()) it->second.ended = is_terminal(t->to);
    host.state({job, from, t->to, t->reason}, now);
    return true;
  });
}

JobFacts& Core::facts(std::uint32_t job) {
  JobFacts& j = facts_[job];
  if (j.loaded) return j;
  auto start = store.latest(job, EventType::job_start);
  if (start) {
    j.start_node = start->event.node;
    j.start_restart = start->event.restart;
  } else {
    start = store.latest(job, EventType::step_start);
  }
  j.loaded = start.has_value();  // until a start is heard of, ask again next time
  if (start && start->event.attrs.contains("options") && start->event.attrs["options"].is_object()) {
    const json& o = start->event.attrs["options"];
    j.started = true;
    if (o.contains("results") && o["results"].is_boolean()) j.dump = o["results"].get<bool>();
    if (o.contains("protect") && o["protect"].is_boolean()) j.protect = o["protect"].get<bool>();
    if (o.contains("keep") && o["keep"].is_number_integer()) j.keep = o["keep"].get<int>();
    if (o.contains("retries") && o["retries"].is_number_integer()) j.retries = o["retries"].get<int>();
    if (o.contains("rules") && o["rules"].is_string()) j.rules = o["rules"].get<std::string>();
  }
  if (auto uid = store.job_owner(job)) {
    j.owner.uid = *uid;
    if (struct passwd* pw = getpwuid(*uid)) {
      j.owner.user = pw->pw_name;
      j.owner.gid = pw->pw_gid;
    }
  }
  if (auto st = store.job_state(job)) j.ended = is_terminal(job_state_from_name(st->first).value_or(JobState::running));
  if (auto k = store.known_job(job)) j.owner.incarnation = k->incarnation;
  return j;
}

bool Core::retire(std::uint32_t job, const std::string& why, std::int64_t now) {
  return transaction("retire", [&] {
    auto st = store.job_state(job);
    if (st && !is_terminal(job_state_from_name(st->first).value_or(JobState::running)))
      lifecycle(job, {LifecycleInput::Kind::ended_failed, "gone from Slurm: " + why, true}, now);
    host.retiring(job, now);  // modules write what they staged for it, then forget it
    facts_.erase(job);
    decided.erase(job);
    auto key = store.retire(job, now);
    if (!key) {
      spdlog::error("job {}: cannot archive it for the new job with its id: {}", job, key.error().what());
      return false;
    }
    counters.jobs_retired++;
    auto row = store.job_row(*key);
    spdlog::warn("job {}: {}; the earlier job {} is now {}", job, why, job,
                 job_key_name(*key, row ? row->incarnation : 0));
    return true;
  });
}

std::vector<StepKey> Core::signal_targets(std::uint32_t job) const {
  std::vector<StepKey> out;
  for (const StepKey& k : monitor.steps_of(job))
    if (k.step != 0xfffffffbu) out.push_back(k);  // SLURM_BATCH_SCRIPT: the batch shell
  return out;
}

json targets_json(const std::vector<StepKey>& targets) {
  json out = json::array();
  for (const StepKey& k : targets) out.push_back({{"step", k.step}, {"node", k.node}});
  return out;
}

Result<json> Core::checkpoint_command(std::uint32_t job, const std::string& reason) {
  auto targets = signal_targets(job);
  if (targets.empty()) return make_error(Errc::unavailable, "job " + std::to_string(job) + " has no running step to signal");
  json t = targets_json(targets);
  const std::uint64_t id = commands.add(job, "checkpoint", reason, std::move(targets), clock());
  return json{{"command", id}, {"targets", t}};
}

}  // namespace vigil::controller
