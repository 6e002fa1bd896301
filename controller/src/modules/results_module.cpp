// results_module.cpp — see results_module.hpp.
#include "results_module.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace vigil::controller {

ResultsModule::ResultsModule(Core& core) : core_(core) {
  start_dumps();
  core_.host.on_event({EventType::result},
                      [this](const Event& e, std::int64_t seq, std::int64_t now) { on_result(e, seq, now); });
  core_.host.on_event({EventType::checkpoint}, [this](const Event& e, std::int64_t, std::int64_t now) {
    if (!e.attrs.value("failed", false)) on_checkpoint(e, now);
  });
  core_.host.on_event({EventType::checkpoint_signal},
                      [this](const Event& e, std::int64_t, std::int64_t now) { on_signal_delivered(e, now); });
  core_.host.on_state(std::nullopt, [this](const StateChange& c, std::int64_t now) {
    if (!is_terminal(c.to)) return;
    if (dumps_) finalise_at_[c.job] = now + kFinaliseGrace;
    stops_.erase(c.job);
    rules_.erase(c.job);
  });
  // Committed: the dump writer may now show these values to readers.
  core_.host.on_commit([this] {
    for (auto& [job, values] : staged_) dumps_->append(core_.facts(job).owner, std::move(values));
    staged_.clear();
  });
  core_.host.on_abort([this] { staged_.clear(); });  // rolled back: the senders resend them
  core_.host.on_retire([this](std::uint32_t job, std::int64_t now) { retire(job, now); });
  core_.host.on_tick([this](std::int64_t now) { tick(now); });
  core_.host.on_request("results",
                        [this](const Caller& who, const json& req, Reply reply) { query(who, req, std::move(reply)); });
  core_.host.on_request("stop", [this](const Caller& who, const json& req, Reply reply) {
    reply(request_stop(who, req));
  });
}

ResultsModule::~ResultsModule() = default;

void ResultsModule::drain() {
  if (dumps_) dumps_->drain();
}

void ResultsModule::start_dumps() {
  if (core_.cfg.results_dir.empty()) return;
  auto r = Store::open(core_.cfg.database, true);
  if (!r) return (void)spdlog::error("result dumps off: {}", r.error().what());
  reader_ = std::move(*r);
  dumps_ = std::make_unique<DumpWriter>(
      core_.cfg.results_dir, core_.cfg.results_pattern,
      [this](std::uint32_t job, std::int64_t after, int limit) -> Result<std::vector<ResultValue>> {
        auto evs = reader_->events(job, after, limit, std::nullopt, EventType::result);
        if (!evs) return evs.error();
        std::vector<ResultValue> out;
        for (const StoredEvent& s : *evs)
          if (auto v = result_value(s.event, s.seq)) out.push_back(std::move(*v));
        return out;
      },
      [this](std::uint32_t job) { return reader_->dump_seq(job); });
  // Dumps a previous vigild left open (killed mid-write) are rebuilt from the
  // store; those of jobs that ended meanwhile are finalised.
  auto todo = core_.store.jobs_needing_dump();
  if (!todo) return (void)spdlog::error("cannot list unfinished dumps: {}", todo.error().what());
  for (const auto& [job, ended] : *todo) {
    const JobFacts& j = core_.facts(job);
    if (!j.dump) continue;
    if (ended) finalise_at_[job] = core_.clock();
    else dumps_->rebuild(job, j.owner);
  }
  if (!todo->empty()) spdlog::info("result dumps: {} job(s) to rebuild or finalise", todo->size());
}

RuleWatch* ResultsModule::rules_of(std::uint32_t job) {
  if (auto it = rules_.find(job); it != rules_.end()) return it->second.empty() ? nullptr : &it->second;
  const JobFacts& f = core_.facts(job);
  if (!f.started || f.ended) return nullptr;  // asked again once its start is known
  RuleWatch& w = rules_[job];
  if (!f.rules.empty()) {
    if (auto rules = parse_rules(f.rules)) w = RuleWatch(std::move(*rules), core_.clock());
    else spdlog::warn("job {}: ignoring its rules: {}", job, rules.error().message);
  }
  return w.empty() ? nullptr : &w;
}

// Inside the open transaction: a stored result value.
void ResultsModule::on_result(const Event& e, std::int64_t seq, std::int64_t now) {
  auto v = result_value(e, seq);
  if (!v) return;
  if (RuleWatch* w = rules_of(e.job)) {
    const double* data = v->array ? v->data.data() : &v->value;
    const std::size_t n = v->array ? v->data.size() : 1;
    for (const RuleFiring& f : w->observe(v->stage, v->name, data, n, v->step, now)) fire(e.job, f, now);
  }
  const JobFacts& j = core_.facts(e.job);
  if (dumps_ && j.dump) {
    staged_[e.job].push_back(std::move(*v));
    if (j.ended) finalise_at_[e.job] = now + kFinaliseGrace;  // a late value: finalise again
  }
}

void ResultsModule::fire(std::uint32_t job, const RuleFiring& f, std::int64_t now) {
  core_.counters.rules_fired++;
  spdlog::warn("job {}: rule '{}' fired: {} (action: {})", job, f.text, f.why, rule_action_name(f.action));
  json value = f.value;
  if (!std::isfinite(f.value)) value = std::isnan(f.value) ? "nan" : (f.value > 0 ? "inf" : "-inf");
  core_.record(job, EventType::rule_fired,
               {{"by", "vigild"}, {"rule", f.text}, {"why", f.why}, {"action", rule_action_name(f.action)},
                {"stage", f.stage}, {"metric", f.metric}, {"value", value}, {"step", f.step}},
               now);
  if (f.action == Rule::Action::stop && !stops_.count(job))
    begin_stop(job, true, "rule '" + f.text + "': " + f.why, core_.cfg.stop_gather_timeout_s, now);
}

// Stop-and-gather: ask every running step to checkpoint (the job's own
// checkpoint signal), then cancel the job in Slurm once a checkpoint is
// reported or the timeout passes; the dump is finalised when it has ended.
Result<json> ResultsModule::begin_stop(std::uint32_t job, bool gather, const std::string& reason, int timeout_s,
                                       std::int64_t now) {
  Stop st;
  st.requested_ns = now;
  st.reason = reason;
  std::vector<StepKey> targets = core_.signal_targets(job);
  const json tj = targets_json(targets);
  if (gather && !targets.empty()) {
    st.deadline_ns = now + static_cast<std::int64_t>(timeout_s) * 1'000'000'000;
    st.command = core_.commands.add(job, "checkpoint", "stop", std::move(targets), now);
  } else {
    st.cancel_at_ns = now;  // nothing to gather from: cancel at once
    st.gathered = gather ? "no running step to checkpoint" : "no gather asked";
  }
  core_.counters.stops++;
  spdlog::warn("job {}: stop{} requested: {}", job, gather ? " and gather" : "", reason);
  core_.record(job, EventType::stop,
               {{"by", "vigild"}, {"what", "requested"}, {"reason", reason}, {"gather", gather},
                {"timeout_s", timeout_s}, {"targets", tj}},
               now);
  stops_[job] = std::move(st);
  return json{{"targets", tj}, {"timeout_s", timeout_s}, {"after_seq", core_.store.event_count()}};
}

// The answer to a stop's checkpoint signal is the first checkpoint the
// simulation reports after the signal reached it (a periodic one already
// under way when the request came does not count). Either report may arrive
// first: the plugin's and the SDK's sessions are independent.
void ResultsModule::on_signal_delivered(const Event& e, std::int64_t now) {
  auto it = stops_.find(e.job);
  if (it == stops_.end() || !it->second.command || e.attrs.value("command", std::uint64_t{0}) != it->second.command)
    return;
  Stop& st = it->second;
  if (st.delivered_ns < 0 || e.ts_ns < st.delivered_ns) st.delivered_ns = e.ts_ns;
  for (const auto& [ts, what] : st.early)
    if (ts >= st.delivered_ns) return gathered(st, what, now);
}

void ResultsModule::on_checkpoint(const Event& e, std::int64_t now) {
  auto it = stops_.find(e.job);
  if (it == stops_.end() || it->second.cancel_at_ns) return;
  Stop& st = it->second;
  const std::string what = "checkpoint " + e.attrs.value("path", std::string("?")) + " at step " +
                           std::to_string(e.attrs.value("step", std::int64_t{-1}));
  if (st.command && (st.delivered_ns < 0 || e.ts_ns < st.delivered_ns)) {
    if (st.early.size() < 64) st.early.emplace_back(e.ts_ns, what);
    return;
  }
  gathered(st, what, now);
}

void ResultsModule::gathered(Stop& st, const std::string& what, std::int64_t now) {
  if (st.cancel_at_ns) return;
  // Give the simulation's last values a moment to arrive (the SDK sends every 100 ms).
  st.cancel_at_ns = now + 1'000'000'000;
  st.gathered = what;
}

void ResultsModule::tick_stops(std::int64_t now) {
  std::vector<std::uint32_t> due;
  for (const auto& [job, st] : stops_) {
    const bool timed_out = st.deadline_ns && now >= st.deadline_ns && !st.cancel_at_ns;
    if (timed_out || (st.cancel_at_ns && now >= st.cancel_at_ns)) due.push_back(job);
  }
  for (std::uint32_t job : due) {
    const Stop st = std::move(stops_[job]);
    stops_.erase(job);
    const bool timed_out = !st.cancel_at_ns;
    const std::string why = timed_out ? "no checkpoint reported within the timeout" : st.gathered;
    Status cancelled = core_.slurm ? core_.slurm->cancel_job(job)
                                   : Status(make_error(Errc::unavailable, "no Slurm connection"));
    if (!cancelled) spdlog::error("job {}: cannot cancel: {}", job, cancelled.error().message);
    core_.transaction("stop", [&] {
      core_.record(job, EventType::stop,
                   {{"by", "vigild"}, {"what", cancelled ? "cancelled" : "cancel_failed"}, {"gathered", why},
                    {"reason", st.reason}, {"error", cancelled ? "" : cancelled.error().message}},
                   now);
      if (cancelled) core_.lifecycle(job, {LifecycleInput::Kind::stopped, why}, now);
      return true;
    });
  }
}

// Between turns: stops due, stall rules, dumps to finalise, finalised dumps.
void ResultsModule::tick(std::int64_t now) {
  tick_stops(now);
  std::vector<std::pair<std::uint32_t, RuleFiring>> stalls;
  for (auto& [job, w] : rules_)
    for (const RuleFiring& f : w.tick(now)) stalls.emplace_back(job, f);
  for (const auto& [job, f] : stalls) fire(job, f, now);
  if (!dumps_) return;
  for (auto it = finalise_at_.begin(); it != finalise_at_.end();) {
    if (now < it->second) {
      ++it;
      continue;
    }
    const JobFacts& j = core_.facts(it->first);
    if (j.dump) dumps_->finalise(it->first, j.owner, "job ended");
    it = finalise_at_.erase(it);
  }
  record_finished(now);
  apply_syncs(now);
  answer_reads();
  if (now - last_sync_ns_ >= static_cast<std::int64_t>(core_.cfg.results_sync_s) * 1'000'000'000) {
    dumps_->sync();  // on this module's clock: the same in the simulator and the longrun bench
    last_sync_ns_ = now;
  }
}

// Inside a transaction: the values the dump holds on disk leave the store.
bool ResultsModule::drop_dumped(const DumpSynced& m) {
  auto n = core_.store.mark_dumped({m.job, m.incarnation, m.from_seq, m.upto_seq});
  if (!n) {
    spdlog::error("job {}: dropping values its dump holds: {}", m.job, n.error().what());
    return false;
  }
  core_.counters.results_pruned += static_cast<std::uint64_t>(*n);
  return true;
}

// The dump has these values on disk: they leave the store, their rows stay as
// replay ids. Replay ids of rows stored more than results_replay_h ago go.
void ResultsModule::apply_syncs(std::int64_t now) {
  std::vector<DumpSynced> marks = dumps_->take_synced();
  if (!marks.empty()) {
    core_.transaction("results leave the store", [&] {
      return std::all_of(marks.begin(), marks.end(), [&](const DumpSynced& m) { return drop_dumped(m); });
    });
  }
  constexpr std::int64_t kMinute = 60'000'000'000;
  if (replay_marks_.empty() || now - replay_marks_.back().first >= kMinute)
    replay_marks_.emplace_back(now, core_.store.max_seq());
  const std::int64_t window = static_cast<std::int64_t>(core_.cfg.results_replay_h) * 3600 * 1'000'000'000;
  std::int64_t upto = 0;
  while (!replay_marks_.empty() && replay_marks_.front().first <= now - window) {
    upto = replay_marks_.front().second;
    replay_marks_.pop_front();
  }
  if (upto > 0)
    core_.transaction("replay ids expire", [&] {
      auto n = core_.store.drop_replay_ids(upto);
      if (!n) spdlog::error("dropping expired replay ids: {}", n.error().what());
      return static_cast<bool>(n);
    });
}

// Slurm reused the id (ADR 0017). A dump still waiting to be finalised (the
// old job ended within the grace, or Core::retire just ended it) is finalised
// now, from the values the store held before this transaction, and its
// `results_final` recorded under the old job, so both move to its archived
// key. The new job's dump is a file of its own (DumpOwner::incarnation).
void ResultsModule::retire(std::uint32_t job, std::int64_t now) {
  rules_.erase(job);
  stops_.erase(job);
  staged_.erase(job);  // stored under the old job; not in its dump
  if (!dumps_ || !finalise_at_.count(job)) return (void)finalise_at_.erase(job);
  finalise_at_.erase(job);
  const JobFacts& f = core_.facts(job);
  if (!f.dump) return;
  dumps_->finalise(job, f.owner, "job id reused by Slurm");
  dumps_->drain();  // rare, and short: one file's last rows and its digest
  record_finished(now);
}

// Each finalised dump's `results_final` event (files, sizes, SHA-256).
void ResultsModule::record_finished(std::int64_t now) {
  for (DumpFinal& d : dumps_->take_finished()) {
    if (d.ok && d.files.empty()) continue;  // a job without results
    json files = json::array();
    for (const DumpFileInfo& f : d.files) files.push_back({{"path", f.path}, {"bytes", f.bytes}, {"sha256", f.sha256}});
    core_.record(d.job, EventType::results_final,
                 {{"by", "vigild"}, {"ok", d.ok}, {"error", d.error}, {"files", files}, {"records", d.records},
                  {"last_step", d.last_step}},
                 now);
    if (d.ok && d.upto_seq > 0)
      core_.transaction("results leave the store",
                        [&] { return drop_dumped({d.job, d.incarnation, d.from_seq, d.upto_seq}); });
    if (core_.facts(d.job).ended && !finalise_at_.count(d.job))
      core_.forget_facts(d.job);  // read again from the store if anything else arrives
  }
}

// The `results` query behind `vigil tail`: values after a sequence number;
// arrays come summarised (shape, min, max, mean, non-finite count).
void ResultsModule::query(const Caller& who, const json& req, Reply reply) {
  if (!req.contains("job") || !req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
    return reply(make_error(Errc::malformed, "results request needs 'job'"));
  const auto job = req["job"].get<std::uint32_t>();
  const auto owner = core_.store.job_owner(job);
  if (!owner || (!who.admin && *owner != who.uid))
    return reply(make_error(Errc::denied, "job " + std::to_string(job) + " is not yours or unknown"));
  const std::int64_t after =
      req.contains("after") && req["after"].is_number_integer() ? req["after"].get<std::int64_t>() : 0;
  const int limit = req.contains("limit") && req["limit"].is_number_unsigned()
                        ? static_cast<int>(std::min<std::uint64_t>(req["limit"].get<std::uint64_t>(), 10000))
                        : 1000;
  if (dumps_ && after < core_.store.dump_seq(job)) {  // those values are only in the files now
    const std::uint64_t id = next_read_++;
    reads_[id] = {std::move(reply), job, after, limit};
    dumps_->read(id, job, core_.facts(job).owner, after, limit);
    return;
  }
  reply(answer(job, after, limit, nullptr));
}

// Queries that waited on the dump writer. A dump that cannot be read (lost,
// removed by hand) leaves what the store still holds, and says why.
void ResultsModule::answer_reads() {
  for (DumpRead& r : dumps_->take_reads()) {
    auto it = reads_.find(r.id);
    if (it == reads_.end()) continue;
    PendingRead p = std::move(it->second);
    reads_.erase(it);
    if (r.values && !r.values->empty()) {
      p.reply(answer(p.job, p.after, p.limit, &*r.values));
      continue;
    }
    auto out = answer(p.job, std::max(p.after, core_.store.dump_seq(p.job)), p.limit, nullptr);
    if (out && !r.values) (*out)["dump_error"] = r.values.error().what();
    p.reply(std::move(out));
  }
}

namespace {
// Arrays come summarised (shape, min, max, mean, non-finite count).
json value_json(const ResultValue& v) {
  json o = {{"seq", v.seq}, {"stage", v.stage}, {"name", v.name}, {"units", v.units}, {"step", v.step},
            {"sim_t", v.sim_time}, {"wall_ns", v.wall_ns}, {"kind", v.array ? "array" : "scalar"}};
  if (!v.array) {
    o["v"] = v.value;
    return o;
  }
  double lo = 0, hi = 0, sum = 0;
  std::size_t finite = 0;
  for (double x : v.data) {
    if (!std::isfinite(x)) continue;
    lo = finite ? std::min(lo, x) : x;
    hi = finite ? std::max(hi, x) : x;
    sum += x;
    ++finite;
  }
  o["dims"] = v.dims;
  o["min"] = lo;
  o["max"] = hi;
  o["mean"] = finite ? sum / static_cast<double>(finite) : 0.0;
  o["nonfinite"] = v.data.size() - finite;
  return o;
}
}  // namespace

// Values after `after`: those read from the dump, or the store's.
Result<json> ResultsModule::answer(std::uint32_t job, std::int64_t after, int limit,
                                   const std::vector<ResultValue>* from_dump) {
  json values = json::array();
  std::int64_t last = after;
  if (from_dump) {
    for (const ResultValue& v : *from_dump) {
      last = v.seq;
      values.push_back(value_json(v));
    }
  } else {
    auto evs = core_.store.events(job, after, limit, std::nullopt, EventType::result);
    if (!evs) return evs.error();
    for (const StoredEvent& s : *evs) {
      last = s.seq;
      if (auto v = result_value(s.event, s.seq)) values.push_back(value_json(*v));
    }
  }
  json out = {{"job", job}, {"values", values}, {"last_seq", last}};
  if (auto st = core_.store.job_state(job)) out["state"] = st->first;
  if (auto fin = core_.store.latest(job, EventType::results_final)) out["final"] = fin->event.attrs;
  if (dumps_) {
    const JobFacts& j = core_.facts(job);
    if (auto p = dump_path(core_.cfg.results_dir, core_.cfg.results_pattern, j.owner, job); p && j.dump) out["file"] = *p;
  }
  return out;
}

Result<json> ResultsModule::request_stop(const Caller& who, const json& req) {
  if (!req.contains("job") || !req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
    return make_error(Errc::malformed, "stop request needs 'job'");
  const auto job = req["job"].get<std::uint32_t>();
  if (!who.admin && core_.store.job_owner(job) != who.uid)
    return make_error(Errc::denied, "job " + std::to_string(job) + " is not yours");
  auto st = core_.store.job_state(job);
  if (!st) return make_error(Errc::unavailable, "job " + std::to_string(job) + " is unknown to vigild");
  if (is_terminal(job_state_from_name(st->first).value_or(JobState::running)))
    return make_error(Errc::unavailable, "job " + std::to_string(job) + " has already ended (" + st->first + ")");
  if (stops_.count(job)) return make_error(Errc::unavailable, "job " + std::to_string(job) + " is already stopping");
  const bool gather = req.value("gather", true);
  int timeout = core_.cfg.stop_gather_timeout_s;
  if (req.contains("timeout_s") && req["timeout_s"].is_number_unsigned())
    timeout = static_cast<int>(std::clamp<std::uint64_t>(req["timeout_s"].get<std::uint64_t>(), 1, 3600));
  return begin_stop(job, gather, "requested by uid " + std::to_string(who.uid), timeout, core_.clock());
}

}  // namespace vigil::controller
