// recovery_module.cpp — see recovery_module.hpp.
#include "recovery_module.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>

namespace vigil::controller {

RecoveryModule::RecoveryModule(Core& core, CheckpointLedger& ledger) : core_(core), ledger_(ledger) {
  if (!core_.slurm) return;  // nothing to act through: the module is off
  core_.host.on_tick([this](std::int64_t now) { tick(now); });
  core_.host.on_retire([this](std::uint32_t job, std::int64_t) {  // ADR 0017: nothing carries over
    requeues_.erase(job);
    excludes_.erase(job);
    exclude_next_.erase(job);
    release_at_.erase(job);
    release_after_.erase(job);
    returned_.erase(job);
    failed_at_.erase(job);
  });
  core_.host.on_event({EventType::job_start}, [this](const Event& e, std::int64_t, std::int64_t) {
    excludes_.erase(e.job);  // running again: leave it alone
  });
  core_.host.on_event({EventType::job_end},
                      [this](const Event& e, std::int64_t, std::int64_t now) { old_attempt_ended(e, now); });
  // Planned requeues (maintenance) need no more; recovery from trouble is configured.
  if (!core_.cfg.recovery) return;
  resume();
  core_.host.on_event({EventType::node_lost, EventType::step_silent},
                      [this](const Event& e, std::int64_t, std::int64_t now) {
                        consider(e.job,
                                 e.type == EventType::node_lost ? RecoveryInput::Trouble::node_lost
                                                                : RecoveryInput::Trouble::step_silent,
                                 e.node, now);
                      });
  // A superseded attempt running again (the fence module's `fenced`) and its
  // successor failing close to it in time: retried as trouble, not the job's
  // own failure (ADR 0022). Slurm numbers both attempts' steps alike, so the
  // old srun, thawed or reconnected, cancels "its" step 0 — the new one.
  core_.host.on_event({EventType::recovery}, [this](const Event& e, std::int64_t, std::int64_t now) {
    if (e.attrs.value("action", std::string()) == "fenced") returned_[e.job] = now;
  });
  core_.host.on_state(JobState::failed, [this](const StateChange& c, std::int64_t now) {
    auto st = core_.store.job_state(c.job);
    auto d = decided_for(c.job);
    const std::uint32_t restart = std::max(st ? st->second : 0u, core_.facts(c.job).start_restart);
    if (d && restart > *d) failed_at_[c.job] = now;  // a successor of a superseded attempt
  });
  // Slurm saw a node fail before (or without) us: vigild was down, say.
  core_.host.on_slurm_view([this](const std::vector<SlurmJob>& jobs, std::int64_t now) {
    for (const SlurmJob& j : jobs)
      if (j.state == "NODE_FAIL") consider(j.job, RecoveryInput::Trouble::node_fail, j.nodes, now);
  });
}

void RecoveryModule::consider(std::uint32_t job, RecoveryInput::Trouble trouble, const std::string& node,
                              std::int64_t now) {
  const JobFacts& facts = core_.facts(job);
  if (facts.start_node.empty() && !core_.store.latest(job, EventType::job_start)) return;  // not a batch job
  // A node recovery already took out of this job: what is still watched there
  // are the failed attempt's steps, not news.
  if (!node.empty() && already_down(job, node)) return;
  auto st = core_.store.job_state(job);
  if (!st) return;
  const auto state = job_state_from_name(st->first).value_or(JobState::running);
  if (state == JobState::stopped || state == JobState::cancelled || state == JobState::completed) return;
  RecoveryInput in;
  in.trouble = trouble;
  in.node = node;
  in.restart = std::max(st->second, facts.start_restart);  // the newest job_start: the newest attempt
  if (auto d = decided_for(job)) in.decided_for_restart = *d;
  if (facts.retries >= 0) in.job_retries = facts.retries;
  const auto& verified = ledger_.verified(job);
  in.has_checkpoint = !verified.empty();
  if (auto evs = core_.store.events(job, 0, 100000, std::nullopt, EventType::recovery))
    for (const StoredEvent& r : *evs)
      if (r.event.attrs.value("planned", false) && r.event.attrs.value("action", std::string()) == "requeue")
        in.planned_requeues++;
  RecoveryPolicy pol;
  pol.default_retries = core_.cfg.default_retries;
  pol.backoff_base_s = core_.cfg.retry_backoff_s;
  pol.backoff_max_s = core_.cfg.retry_backoff_max_s;
  const RecoveryDecision d = decide_recovery(pol, in);
  if (d.action == RecoveryDecision::Action::none) {
    // Another node of the same failed attempt: excluded and marked DOWN too,
    // with the pending requeue or, if that has happened, at once (a dead node
    // Slurm still thinks alive would hold the job's old steps).
    if (node.empty() || trouble != RecoveryInput::Trouble::node_lost) return;
    if (auto it = requeues_.find(job); it != requeues_.end()) {
      it->second.down.push_back(node);
    } else {
      if (auto s = core_.slurm->down_node(node, "vigil: lost (job " + std::to_string(job) + ")"); !s)
        spdlog::error("job {}: {}", job, s.error().message);
      core_.record(job, EventType::recovery,
                   {{"by", "vigild"}, {"action", "down"}, {"node", node}, {"restart", in.restart}}, now);
      auto& ex = excludes_[job];
      ex.first += (ex.first.empty() ? "" : ",") + node;
      ex.second = now + 10'000'000'000LL;
    }
    return;
  }
  core_.decided[job] = in.restart;
  const char* action = d.action == RecoveryDecision::Action::requeue ? "requeue" : "fail";
  json a = {{"by", "vigild"},        {"action", action},       {"attempt", d.attempt}, {"budget", d.budget},
            {"restart", in.restart}, {"trouble", trouble_name(trouble)}, {"node", node},
            {"delay_s", d.delay_s},  {"reason", d.reason}};
  if (in.has_checkpoint) a["newest_checkpoint"] = verified.back().path;
  // The attempt given up on may still be running where vigild cannot see it
  // (a node cut off, paused): what it reports from after its last sign of life
  // is refused from now on (the fence module, ADR 0022).
  const std::string troubled = trouble == RecoveryInput::Trouble::node_fail ? std::string() : node;
  const Store::Fence fence{in.restart, last_sign_of_life(job, in.restart, troubled, now), troubled};
  a["fence_after_ns"] = fence.after_ns;
  spdlog::warn("job {}: recovery: {} — {}", job, action, d.reason);
  core_.transaction("recovery", [&] {
    if (auto s = core_.store.set_fence(job, fence); !s) spdlog::error("job {}: {}", job, s.error().what());
    core_.record(job, EventType::recovery, std::move(a), now);
    if (d.action == RecoveryDecision::Action::requeue) {
      core_.lifecycle(job, {LifecycleInput::Kind::requeued, "vigil: " + d.reason}, now);
      Requeue& r = requeues_[job];
      r.at_ns = now + static_cast<std::int64_t>(d.delay_s * 1e9);
      r.restart = in.restart;
      if (!node.empty() && trouble == RecoveryInput::Trouble::node_lost) r.down.push_back(node);
    } else {
      core_.lifecycle(job, {LifecycleInput::Kind::ended_failed, d.reason}, now);
      // Cancelled first, so Slurm does not requeue it when the node goes DOWN;
      // then the dead node marked DOWN, or it would hold the cancelled job in
      // COMPLETING until Slurm's own SlurmdTimeout.
      if (auto c = core_.slurm->cancel_job(job); !c) spdlog::error("job {}: {}", job, c.error().message);
      if (!node.empty() && trouble == RecoveryInput::Trouble::node_lost)
        if (auto s = core_.slurm->down_node(node, "vigil: lost (job " + std::to_string(job) + " failed)"); !s)
          spdlog::error("job {}: {}", job, s.error().message);
    }
    return true;
  });
}

void RecoveryModule::planned_requeue(std::uint32_t job, std::uint32_t restart, const std::string& trigger,
                                     const std::string& reason, std::int64_t now) {
  core_.decided[job] = restart;
  json attrs = {{"by", "vigild"}, {"action", "requeue"}, {"planned", true}, {"trouble", trigger},
                {"restart", restart}, {"reason", reason}, {"delay_s", 0}};
  if (const auto& l = ledger_.verified(job); !l.empty()) attrs["newest_checkpoint"] = l.back().path;
  spdlog::warn("job {}: {}", job, reason);
  core_.transaction("planned requeue", [&] {
    core_.record(job, EventType::recovery, std::move(attrs), now);
    core_.lifecycle(job, {LifecycleInput::Kind::requeued, "vigil: " + reason}, now);
    return true;
  });
  requeues_[job] = Requeue{now, {}, restart};
}

// The newest event vigild has from attempt `restart` of the job on the node in
// trouble (its steps' rows: the emitter's clock); every node's when the trouble
// names none (Slurm's NODE_FAIL). Nothing known: the decision's own time.
std::int64_t RecoveryModule::last_sign_of_life(std::uint32_t job, std::uint32_t restart, const std::string& node,
                                               std::int64_t now) {
  std::int64_t last = 0;
  if (auto rows = core_.store.steps(job))
    for (const Store::StepRow& r : *rows)
      if (r.restart == restart && (node.empty() || r.node == node)) last = std::max(last, r.last_ns);
  return last > 0 ? last : now;
}

std::optional<std::uint32_t> RecoveryModule::decided_for(std::uint32_t job) {
  if (auto it = core_.decided.find(job); it != core_.decided.end()) return it->second;
  // After a restart of vigild: the newest decision on the timeline.
  auto evs = core_.store.events(job, 0, 100000, std::nullopt, EventType::recovery);
  if (!evs) return std::nullopt;
  for (auto it = evs->rbegin(); it != evs->rend(); ++it) {
    const std::string act = it->event.attrs.value("action", std::string());
    if (act == "requeue" || act == "fail") return core_.decided[job] = it->event.attrs.value("restart", 0u);
  }
  return std::nullopt;
}

bool RecoveryModule::already_down(std::uint32_t job, const std::string& node) {
  if (auto it = requeues_.find(job);
      it != requeues_.end() && std::find(it->second.down.begin(), it->second.down.end(), node) != it->second.down.end())
    return true;
  auto evs = core_.store.events(job, 0, 100000, std::nullopt, EventType::recovery);
  if (!evs) return false;
  for (const StoredEvent& e : *evs) {
    const std::string act = e.event.attrs.value("action", std::string());
    const std::string list = act == "requeued" ? e.event.attrs.value("down", std::string())
                             : act == "down"   ? e.event.attrs.value("node", std::string())
                                               : std::string();
    for (std::size_t pos = 0; pos <= list.size() && !list.empty();) {
      const auto comma = list.find(',', pos);
      if (list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos) == node) return true;
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  return false;
}

// The failed attempt's batch step has ended: the requeued job may run again.
void RecoveryModule::old_attempt_ended(const Event& e, std::int64_t now) {
  auto after = release_after_.find(e.job);
  auto rel = release_at_.find(e.job);
  auto ex = excludes_.find(e.job);
  auto d = core_.decided.find(e.job);
  if (after == release_after_.end() || rel == release_at_.end() || ex == excludes_.end() ||
      d == core_.decided.end() || e.restart > d->second)
    return;
  rel->second = std::max(now, after->second);
  ex->second.second = rel->second + 10'000'000'000LL;
  release_after_.erase(after);
  spdlog::info("job {}: the failed attempt's batch step has ended", e.job);
}

// After a restart: a requeue that was decided but not carried out (vigild
// died during the backoff) is carried out now.
void RecoveryModule::resume() {
  auto rows = core_.store.jobs(std::nullopt, 100000);
  if (!rows) return;
  for (const JobRow& j : *rows) {
    if (j.state != "RECOVERING") continue;
    auto last = core_.store.latest(j.job, EventType::recovery);
    if (!last) continue;
    const json& a = last->event.attrs;
    if (a.value("action", std::string()) != "requeue") continue;
    Requeue& r = requeues_[j.job];
    r.at_ns = core_.clock();
    r.restart = a.value("restart", 0u);
    core_.decided[j.job] = r.restart;
    const std::string node = a.value("node", std::string());
    if (!node.empty() && a.value("trouble", std::string()) == trouble_name(RecoveryInput::Trouble::node_lost))
      r.down.push_back(node);
    spdlog::info("job {}: carrying out the requeue decided before the restart", j.job);
  }
}

void RecoveryModule::requeue_now(std::uint32_t job, std::int64_t now) {
  const Requeue r = requeues_[job];
  requeues_.erase(job);
  std::string errors, nodes;
  for (const std::string& n : r.down) nodes += (nodes.empty() ? "" : ",") + n;
  // All lost nodes in one update: one failure, one requeue by Slurm.
  if (!nodes.empty())
    if (auto s = core_.slurm->down_node(nodes, "vigil: lost (job " + std::to_string(job) + " requeued)"); !s)
      errors += s.error().message + "; ";
  const Status q = core_.slurm->requeue_job(job);
  if (!q) errors += q.error().message + "; ";
  // The old attempt's steps stay watched: one on a node that also died is
  // declared lost later, and that node is marked DOWN then (consider()).
  const JobFacts& facts = core_.facts(job);
  const bool batch_host_lost = std::find(r.down.begin(), r.down.end(), facts.start_node) != r.down.end();
  release_at_[job] = now;
  // Slurm tells a running srun about one failed node only; with several lost
  // at once, the failed attempt's srun on a surviving batch host waits
  // KillWait + 2 s for the other dead nodes' tasks, then cancels "its" step —
  // which by then would be the new attempt's step of the same id. So with
  // more than one lost node and a live batch host, the release waits for that
  // srun to be gone: its batch step ended (job_end) and KillWait + 3 s passed.
  if (r.down.size() > 1 && !facts.start_node.empty() && !batch_host_lost) {
    if (kill_wait_s_ < 0) {
      auto k = core_.slurm->kill_wait_s();
      kill_wait_s_ = k ? *k : 30;  // Slurm's default
    }
    const std::int64_t srun_gone = now + (kill_wait_s_ + 3) * 1'000'000'000LL;
    auto ended = core_.store.latest(job, EventType::job_end);
    if (ended && ended->event.restart >= r.restart) {
      release_at_[job] = srun_gone;
    } else {
      release_at_[job] = srun_gone + 60'000'000'000LL;  // at the latest, should job_end never come
      release_after_[job] = srun_gone;
    }
    spdlog::info("job {}: {} nodes lost at once; released once its old srun is gone", job, r.down.size());
  }
  excludes_[job] = {nodes, release_at_[job] + 10'000'000'000LL};
  spdlog::warn("job {}: requeued{}{}", job, nodes.empty() ? "" : ", excluding " + nodes,
               errors.empty() ? "" : " (" + errors + ")");
  core_.record(job, EventType::recovery,
               {{"by", "vigild"}, {"action", q ? "requeued" : "requeue_failed"}, {"restart", r.restart},
                {"down", nodes}, {"error", errors}},
               now);
}

// A successor that failed within kInterferenceWindow of its superseded
// predecessor running again is given another attempt (it spends the budget).
void RecoveryModule::interference(std::int64_t now) {
  for (auto it = failed_at_.begin(); it != failed_at_.end();) {
    const auto [job, failed] = *it;
    auto back = returned_.find(job);
    if (back != returned_.end() && std::abs(back->second - failed) <= kInterferenceWindow) {
      it = failed_at_.erase(it);
      returned_.erase(back);
      consider(job, RecoveryInput::Trouble::superseded, "", now);
      continue;
    }
    it = now - failed > kInterferenceWindow ? failed_at_.erase(it) : std::next(it);
  }
  std::erase_if(returned_, [&](const auto& kv) { return now - kv.second > 3600'000'000'000LL; });
}

void RecoveryModule::tick(std::int64_t now) {
  if (!failed_at_.empty()) interference(now);
  std::vector<std::uint32_t> due;
  for (const auto& [job, r] : requeues_)
    if (now >= r.at_ns) due.push_back(job);
  for (std::uint32_t job : due) requeue_now(job, now);
  // Once Slurm has requeued the job it holds it back until its credential
  // expires (cred_expire, 120 s by default) and it must avoid the lost nodes:
  // vigild makes it eligible now and excludes them, repeating once a second
  // for 10 s because Slurm's requeue completes asynchronously.
  for (auto it = excludes_.begin(); it != excludes_.end();) {
    auto& [nodes, until] = it->second;
    if (now > until) {
      it = excludes_.erase(it);
      continue;
    }
    if (now >= exclude_next_[it->first]) {
      exclude_next_[it->first] = now + 1'000'000'000;
      const auto rel = release_at_.find(it->first);
      const bool release = rel == release_at_.end() || now >= rel->second;
      if (auto s = core_.slurm->exclude_nodes(it->first, nodes, release); !s)
        spdlog::debug("job {}: release/exclude: {}", it->first, s.error().message);
    }
    ++it;
  }
  std::erase_if(exclude_next_, [&](const auto& kv) { return !excludes_.count(kv.first); });
  std::erase_if(release_at_, [&](const auto& kv) { return !excludes_.count(kv.first); });
  std::erase_if(release_after_, [&](const auto& kv) { return !excludes_.count(kv.first); });
}

}  // namespace vigil::controller
