// checkpoint_ledger.cpp — see checkpoint_ledger.hpp.
#include "checkpoint_ledger.hpp"

#include <spdlog/spdlog.h>

namespace vigil::controller {

CheckpointLedger::CheckpointLedger(Core& core) : core_(core) {
  core_.host.on_event({EventType::checkpoint}, [this](const Event& e, std::int64_t seq, std::int64_t) {
    if (!e.attrs.value("failed", false)) add(e, seq);
  });
  core_.host.on_event({EventType::checkpoint_pruned, EventType::checkpoint_skipped},
                      [this](const Event& e, std::int64_t, std::int64_t) {
                        forget(e.job, e.attrs.value("path", std::string()), e.attrs.value("sha256", std::string()));
                      });
  core_.host.on_request("restart_from", [this](const Caller& who, const json& req, Reply reply) {
    restart_from(who, req, std::move(reply));
  });
  core_.host.on_digest(DigestWorker::Task::Kind::ledger,
                       [this](DigestWorker::Done& d, std::int64_t now) { digested(d, now); });
  core_.host.on_digest(DigestWorker::Task::Kind::choose,
                       [this](DigestWorker::Done& d, std::int64_t now) { chosen(d, now); });
  // A new job under this id starts with an empty ledger (ADR 0017).
  core_.host.on_retire([this](std::uint32_t job, std::int64_t) {
    ledger_.erase(job);
    std::erase_if(chosen_, [job](const auto& kv) { return kv.first.first == job; });
  });
}

const std::vector<CheckpointEntry>& CheckpointLedger::verified(std::uint32_t job) {
  auto it = ledger_.find(job);
  if (it != ledger_.end()) return it->second;
  std::vector<CheckpointEntry>& out = ledger_[job];
  // A pruned checkpoint's checkpoint_verified event has left the store (folded
  // into its checkpoint_pruned, ADR 0019): what is read here is what is kept,
  // as many as retention keeps, whatever the job's age.
  if (auto evs = core_.store.events(job, 0, 100000, std::nullopt, EventType::checkpoint_verified))
    for (const StoredEvent& s : *evs)
      if (s.event.attrs.value("ok", false)) out.push_back(entry_from(s));
  if (out.empty()) return out;
  if (auto evs = core_.store.events(job, 0, 100000, std::nullopt, EventType::checkpoint_skipped))
    for (const StoredEvent& s : *evs)
      std::erase_if(out, [&](const CheckpointEntry& c) {
        return c.path == s.event.attrs.value("path", std::string()) &&
               c.sha256 == s.event.attrs.value("sha256", std::string());
      });
  return out;
}

void CheckpointLedger::forget(std::uint32_t job, const std::string& path, const std::string& sha256) {
  auto it = ledger_.find(job);
  if (it == ledger_.end()) return;
  std::erase_if(it->second, [&](const CheckpointEntry& c) { return c.path == path && c.sha256 == sha256; });
}

CheckpointEntry CheckpointLedger::entry_from(const StoredEvent& verified) {
  const json& a = verified.event.attrs;
  CheckpointEntry c;
  c.verified_seq = verified.seq;
  c.report_seq = a.value("report_seq", std::int64_t{0});
  c.path = a.value("path", std::string());
  c.sha256 = a.value("sha256", std::string());
  c.node = a.value("node", std::string());
  c.bytes = a.value("bytes", std::uint64_t{0});
  c.step = a.value("step", std::int64_t{0});
  c.sim_time = a.value("sim_t", 0.0);
  c.reported_ns = a.value("reported_ns", std::int64_t{0});
  c.restart = a.value("restart", std::uint32_t{0});
  c.mtime_ns = a.value("mtime_ns", std::int64_t{0});
  return c;
}

// A checkpoint reported by the SDK: digest it on the worker thread.
void CheckpointLedger::add(const Event& e, std::int64_t seq) {
  CheckpointEntry c;
  c.report_seq = seq;
  c.path = e.attrs.value("path", std::string());
  c.step = e.attrs.value("step", std::int64_t{0});
  if (e.attrs.contains("sim_t") && e.attrs["sim_t"].is_number()) c.sim_time = e.attrs["sim_t"].get<double>();
  c.node = e.node;
  c.reported_ns = e.ts_ns;
  c.restart = e.restart;
  DigestWorker::Task t;
  t.kind = DigestWorker::Task::Kind::ledger;
  t.token = core_.token();
  t.job = e.job;
  t.owner = core_.facts(e.job).owner.uid;
  t.entry = std::move(c);
  core_.digests.submit(std::move(t));
}

void CheckpointLedger::digested(DigestWorker::Done& d, std::int64_t now) {
  const bool ok = d.error.empty();
  json a = {{"by", "vigild"},           {"ok", ok},                   {"path", d.entry.path},
            {"bytes", d.entry.bytes},   {"sha256", d.entry.sha256},   {"step", d.entry.step},
            {"sim_t", d.entry.sim_time}, {"node", d.entry.node},      {"restart", d.entry.restart},
            {"reported_ns", d.entry.reported_ns}, {"report_seq", d.entry.report_seq}, {"digest_s", d.seconds}};
  if (!ok) {
    a["error"] = d.error;
    spdlog::warn("job {}: checkpoint {} not verified: {}", d.job, d.entry.path, d.error);
    core_.record(d.job, EventType::checkpoint_verified, std::move(a), now);
    return;
  }
  a["mtime_ns"] = d.entry.mtime_ns;
  verified(d.job);  // loaded before the new entry is stored, so it is added once
  ledger_[d.job].push_back(d.entry);
  // Retention reacts to this event (checkpoint_retention.cpp); it may prune
  // older entries, so the new one is looked up again.
  const std::int64_t seq = core_.record(d.job, EventType::checkpoint_verified, std::move(a), now);
  if (auto it = ledger_.find(d.job); it != ledger_.end())
    for (auto c = it->second.rbegin(); c != it->second.rend(); ++c)
      if (c->report_seq == d.entry.report_seq && c->path == d.entry.path && c->sha256 == d.entry.sha256) {
        c->verified_seq = seq;
        break;
      }
}

// `restart_from` (the plugin of a restarted job, or the owner): the newest
// checkpoint whose file still matches its digest. Answered when the worker
// has re-digested it; skips are events.
void CheckpointLedger::restart_from(const Caller& who, const json& req, Reply reply) {
  if (!req.contains("job") || !req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
    return reply(make_error(Errc::malformed, "restart_from needs 'job'"));
  const auto job = req["job"].get<std::uint32_t>();
  if (who.uid != 0 && !who.admin && core_.store.job_owner(job) != who.uid)
    return reply(make_error(Errc::denied, "job " + std::to_string(job) + " is not yours"));
  const Attempt attempt{job, req.value("restart", 0u)};
  if (auto c = chosen_.find(attempt); c != chosen_.end()) return reply(c->second);
  if (auto c = choosing_.find(attempt); c != choosing_.end()) {
    waiters_.emplace(c->second, std::move(reply));
    return;
  }
  const auto& candidates = verified(job);
  if (candidates.empty()) return reply(json{{"job", job}, {"path", nullptr}});
  DigestWorker::Task t;
  t.kind = DigestWorker::Task::Kind::choose;
  t.token = core_.token();
  t.job = job;
  t.owner = core_.facts(job).owner.uid;
  t.candidates.assign(candidates.rbegin(), candidates.rend());
  waiters_.emplace(t.token, std::move(reply));
  choosing_[attempt] = t.token;
  token_attempt_[t.token] = attempt;
  core_.digests.submit(std::move(t));
}

void CheckpointLedger::chosen(DigestWorker::Done& d, std::int64_t now) {
  for (const auto& [c, why] : d.skipped) {
    spdlog::warn("job {}: checkpoint {} (step {}) skipped: {}", d.job, c.path, c.step, why);
    core_.record(d.job, EventType::checkpoint_skipped,
                 {{"by", "vigild"}, {"path", c.path}, {"step", c.step}, {"sha256", c.sha256}, {"why", why}}, now);
  }
  json out = {{"job", d.job}, {"path", nullptr}, {"skipped", d.skipped.size()}};
  if (d.chosen) {
    out["path"] = d.chosen->path;
    out["step"] = d.chosen->step;
    out["sha256"] = d.chosen->sha256;
    core_.record(d.job, EventType::recovery,
                 {{"by", "vigild"}, {"action", "resume"}, {"path", d.chosen->path}, {"step", d.chosen->step},
                  {"sha256", d.chosen->sha256}, {"skipped", d.skipped.size()}},
                 now);
  }
  if (auto ta = token_attempt_.find(d.token); ta != token_attempt_.end()) {
    choosing_.erase(ta->second);
    if (chosen_.size() > 10000) chosen_.clear();  // a bound; a forgotten answer is recomputed
    chosen_[ta->second] = out;
    token_attempt_.erase(ta);
  }
  auto [first, last] = waiters_.equal_range(d.token);
  for (auto w = first; w != last; ++w) w->second(out);
  waiters_.erase(first, last);
}

}  // namespace vigil::controller
