// intake.cpp — see intake.hpp.
#include "intake.hpp"

#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <optional>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "checkpoint_plan.hpp"
#include "dump_writer.hpp"
#include "ledger.hpp"
#include "lifecycle.hpp"
#include "queries.hpp"
#include "recovery.hpp"
#include "retention.hpp"
#include "results.hpp"
#include "vigil/client.hpp"
#include "vigil/crypto.hpp"
#include "vigil/munge_auth.hpp"
#include "vigil/rules.hpp"
#include "vigil/wire.hpp"

namespace vigil::controller {

std::int64_t wall_clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

struct Session {
  std::unique_ptr<HmacKey> key;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string role;
  bool admin = false;
  std::uint64_t last_seq = 0;
  std::int64_t expires_ns = 0;
  double tokens = -1;            // event budget (token bucket); -1: not started
  std::int64_t tokens_ns = 0;    // when the budget was last refilled
};

}  // namespace

struct Intake::Impl {
  Config cfg;
  Store& store;
  Clock clock;
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::router};
  MungeAuth munge;
  std::unordered_map<std::uint64_t, Session> sessions;
  std::unordered_map<uid_t, int> sessions_per_uid;
  IntakeCounters counters;
  std::int64_t started_ns;

  struct PendingAck {
    std::string routing_id;
    std::uint64_t session;
    std::uint64_t seq;
    AckInfo ack;
    std::int64_t received_ns = 0;
  };
  Histogram ack_latency;
  mutable std::mutex snap_mu;
  IntakeSnapshot snap;
  std::uint64_t turn_frames = 0;
  double turn_oldest_wait_s = 0;

  IntakeSnapshot make_snapshot() const {
    IntakeSnapshot n;
    const std::int64_t now = clock();
    n.uptime_s = (now - started_ns) / 1'000'000'000;
    n.counters = {{"frames", counters.frames},
                  {"events_stored", counters.events_stored},
                  {"events_duplicate", counters.events_duplicate},
                  {"sessions_opened", counters.sessions_opened},
                  {"commits", counters.commits},
                  {"nodes_lost", counters.nodes_lost},
                  {"steps_silent", counters.steps_silent},
                  {"drains", counters.drains},
                  {"drain_failures", counters.drain_failures},
                  {"transitions", counters.transitions},
                  {"reconcile_rounds", counters.reconcile_rounds},
                  {"reconcile_errors", counters.reconcile_errors},
                  {"rules_fired", counters.rules_fired},
                  {"stops", counters.stops},
                  {"checkpoints_failed", counters.checkpoints_failed},
                  {"outputs_duplicate", counters.outputs_duplicate}};
    if (dumps) {
      const auto d = dumps->stats();
      n.counters["result_records"] = d.records;
      n.counters["result_refused"] = d.refused;
      n.counters["result_errors"] = d.errors;
      n.counters["result_rebuilds"] = d.rebuilds;
      n.counters["results_finalised"] = d.finalised;
    }
    n.rejected = counters.rejected;
    n.sessions = sessions.size();
    n.watched_steps = monitor.watched();
    n.last_turn_frames = turn_frames;
    n.oldest_frame_wait_s = turn_oldest_wait_s;
    for (const auto& v : monitor.nodes())
      n.nodes.push_back({v.node, std::max(0.0, static_cast<double>(now - v.last_ns) / 1e9), v.steps, v.lost});
    n.ack_latency = ack_latency.copy();
    return n;
  }

  void publish() {
    IntakeSnapshot n = make_snapshot();
    std::lock_guard<std::mutex> g(snap_mu);
    snap = std::move(n);
  }
  std::vector<PendingAck> pending;
  bool in_txn = false;
  std::mutex reload_mu;               // guards next_cfg (set by the signal thread)
  std::optional<Config> next_cfg;

  void apply_reload() {
    std::lock_guard<std::mutex> g(reload_mu);
    if (!next_cfg) return;
    cfg.admin_group = next_cfg->admin_group;
    cfg.session_ttl_s = next_cfg->session_ttl_s;
    cfg.max_sessions_per_uid = next_cfg->max_sessions_per_uid;
    cfg.max_events_per_s_per_session = next_cfg->max_events_per_s_per_session;
    next_cfg.reset();
  }

  HeartbeatMonitor monitor;
  SlurmControl* slurm = nullptr;

  // Commands for plugins (a user's checkpoint request...), delivered in the ACK
  // of each target step's next batch. In memory: a restart forgets them, and
  // they expire after kCommandTtl.
  struct PendingCommand {
    Command cmd;
    std::uint32_t job = 0;
    std::int64_t created_ns = 0;
    std::vector<StepKey> targets;  // steps running on their nodes when asked
  };
  static constexpr std::int64_t kCommandTtl = 600LL * 1'000'000'000;
  std::vector<PendingCommand> commands;
  std::uint64_t next_command_id = 1;

  // Attach to `ack` the commands for the steps this plugin batch came from.
  void route_commands(const Session& s, const std::vector<Event>& evs, AckInfo& ack, std::int64_t now) {
    if (commands.empty() || s.uid != 0 || s.role != "plugin") return;
    std::erase_if(commands, [&](const PendingCommand& c) { return c.targets.empty() || now - c.created_ns > kCommandTtl; });
    for (const Event& e : evs) {
      if (e.step == kNoStep || e.node.empty()) continue;
      for (PendingCommand& c : commands) {
        if (c.job != e.job) continue;
        auto t = std::find(c.targets.begin(), c.targets.end(), StepKey{e.job, e.step, e.node});
        if (t == c.targets.end()) continue;
        ack.commands.push_back(c.cmd);
        c.targets.erase(t);
      }
    }
  }

  Impl(Config c, Store& s, Clock k, SlurmControl* sc)
      : cfg(std::move(c)), store(s), clock(std::move(k)), munge(cfg.munge_socket), started_ns(clock()),
        monitor(cfg.heartbeat_missed), slurm(sc) {
    // Steps that were running when vigild stopped: watch them again. Their
    // plugins are backing off (up to 5 s between attempts) and will replay their
    // spools first, so they get a grace period before silence counts.
    if (auto open = store.open_steps()) {
      const std::int64_t grace = static_cast<std::int64_t>(cfg.restart_grace_s) * 1'000'000'000;
      for (const auto& o : *open) monitor.alive({o.job, o.step, o.node}, o.interval_s, started_ns + grace);
      if (!open->empty()) spdlog::info("watching {} steps that were running before the restart", open->size());
    }
    start_results();
    if (cfg.recovery && slurm) resume_recovery();
  }

  // Signs of life for the heartbeat watch (arrival time: vigild's clock).
  void track(const Event& e, std::int64_t now) {
    if (e.node.empty() || e.step == kNoStep) return;
    const StepKey key{e.job, e.step, e.node};
    switch (e.type) {
      case EventType::job_start:
      case EventType::step_start: {
        int interval = 0;
        if (e.attrs.contains("options") && e.attrs["options"].contains("heartbeat_s") &&
            e.attrs["options"]["heartbeat_s"].is_number_integer())
          interval = e.attrs["options"]["heartbeat_s"].get<int>();
        monitor.alive(key, interval, now);
        break;
      }
      case EventType::heartbeat:
        monitor.alive(key, e.attrs.value("interval_s", 0), now);
        break;
      case EventType::task_start:
      case EventType::task_exit:
      case EventType::checkpoint_signal:
        monitor.alive(key, 0, now);
        break;
      case EventType::step_end:
      case EventType::job_end:
        monitor.ended(key);
        break;
      default:
        break;
    }
  }

  // Feed one input to a job's state machine (inside the open transaction).
  void lifecycle(std::uint32_t job, const LifecycleInput& in, std::int64_t now) {
    if (auto s = store.ensure_job(job, now); !s) return (void)spdlog::error("{}", s.error().what());
    auto cur = store.job_state(job);
    if (!cur) return;
    auto from = job_state_from_name(cur->first).value_or(JobState::submitted);
    auto t = next_state(from, in);
    if (!t) return;
    if (auto s = store.transition(job, job_state_name(from), job_state_name(t->to), t->reason, now); !s)
      return (void)spdlog::error("{}", s.error().what());
    counters.transitions++;
    spdlog::info("job {}: {} -> {} ({})", job, job_state_name(from), job_state_name(t->to), t->reason);
    if (is_terminal(t->to)) job_ended(job, now);
  }

  static std::optional<LifecycleInput> input_of(const Event& e) {
    using K = LifecycleInput::Kind;
    switch (e.type) {
      case EventType::submit: return LifecycleInput{K::submitted, ""};
      case EventType::job_start: return LifecycleInput{K::job_started, "on " + e.node};
      case EventType::step_start:
      case EventType::task_start: return LifecycleInput{K::task_started, ""};
      case EventType::job_end: {
        const int code = e.attrs.value("exit_code", -1);
        if (code == 0) return LifecycleInput{K::ended_ok, "batch script exit code 0"};
        if (e.attrs.contains("signal"))
          return LifecycleInput{K::ended_failed, "batch script killed by signal " + e.attrs["signal"].dump()};
        return LifecycleInput{K::ended_failed, "batch script exit code " + std::to_string(code)};
      }
      case EventType::step_silent:
      case EventType::node_lost:
        return LifecycleInput{K::trouble, std::string(event_type_name(e.type)) + " on " + e.node};
      case EventType::node_recovered: return LifecycleInput{K::all_clear, e.node + " heard from again"};
      default: return std::nullopt;
    }
  }

  // Reconciliation: slurmctld's view, fetched by the reconciler thread, applied
  // here so the intake thread stays the only writer.
  std::mutex recon_mu;
  std::vector<SlurmJob> recon_pending;
  std::time_t recon_since = 0;
  std::thread reconciler;
  std::condition_variable recon_cv;
  bool recon_stop = false;
  std::vector<SlurmJob> view_running;               // under recon_mu
  std::vector<SlurmReservation> view_reservations;  // under recon_mu

  void reconcile_loop() {
    std::unique_lock<std::mutex> lk(recon_mu);
    while (!recon_stop) {
      const std::time_t since = recon_since;
      lk.unlock();
      auto r = slurm->load_jobs(since);
      lk.lock();
      if (!r) {
        counters.reconcile_errors++;
        spdlog::warn("reconciliation: {}", r.error().message);
      } else {
        counters.reconcile_rounds++;
        if (r->changed) {
          // Each changed answer is the whole table: its running jobs are the view
          // the checkpoint strategies work from.
          view_running.clear();
          for (const SlurmJob& j : r->jobs)
            if (j.state == "RUNNING") view_running.push_back(j);
          for (auto& j : r->jobs) recon_pending.push_back(std::move(j));
          recon_since = r->last_update;
        }
      }
      if (cfg.checkpoint_before_maintenance_s > 0) {
        lk.unlock();
        auto resv = slurm->load_reservations();
        lk.lock();
        if (resv) view_reservations = std::move(*resv);
        else spdlog::warn("reservations: {}", resv.error().message);
      }
      recon_cv.wait_for(lk, std::chrono::seconds(cfg.reconcile_interval_s), [&] { return recon_stop; });
    }
  }

  // The job's `submit` event, from what slurmctld says was requested. Its id is
  // derived from (submit time, job id), so every reconciliation round and every
  // restart finds the same event and stores it once.
  void record_submit(const SlurmJob& j, std::int64_t now) {
    if (j.submit_time <= 0) return;
    Event e;
    const auto ns = static_cast<std::uint64_t>(j.submit_time) * 1'000'000'000ull;
    for (int i = 0; i < 8; ++i) e.id[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ns >> (56 - 8 * i));
    for (int i = 0; i < 4; ++i) e.id[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(j.job >> (24 - 8 * i));
    std::memcpy(e.id.data() + 12, "SUBM", 4);
    e.type = EventType::submit;
    e.ts_ns = static_cast<std::int64_t>(ns);
    e.job = j.job;
    std::string user;
    if (struct passwd* pw = getpwuid(j.uid)) user = pw->pw_name;
    e.attrs = {{"by", "vigild"},       {"source", "slurmctld"},      {"uid", j.uid},   {"user", user},
               {"name", j.name},       {"account", j.account},       {"partition", j.partition},
               {"nodes", j.req_nodes}, {"cpus", j.req_cpus},         {"tasks", j.req_tasks},
               {"tres", j.tres_req},   {"mem_per_node_mb", j.mem_per_node_mb}};
    if (j.time_limit_min != 0xfffffffeu && j.time_limit_min != 0xffffffffu) e.attrs["time_limit_min"] = j.time_limit_min;
    if (auto r = store.insert(e, 0, now); !r) spdlog::error("reconciliation: submit event: {}", r.error().what());
  }

  void apply_reconciliation() {
    std::vector<SlurmJob> jobs;
    {
      std::lock_guard<std::mutex> g(recon_mu);
      jobs.swap(recon_pending);
    }
    if (jobs.empty()) return;
    using K = LifecycleInput::Kind;
    const std::int64_t now = clock();
    if (auto b = store.begin(); !b) return (void)spdlog::error("reconciliation: {}", b.error().what());
    for (const SlurmJob& j : jobs) {
      record_submit(j, now);
      if (failed_by_policy(j.job)) continue;  // Vigil's verdict, with its reason, stands
      store.ensure_job(j.job, now);
      std::string user;
      if (struct passwd* pw = getpwuid(j.uid)) user = pw->pw_name;
      store.set_owner(j.job, j.uid, user);  // slurmctld is authoritative on ownership
      const auto cur = store.job_state(j.job);
      if (cur && j.restart > cur->second)
        lifecycle(j.job, {K::requeued, "restart " + std::to_string(j.restart), true}, now);
      store.record_slurm_view(j.job, j.state, j.restart);
      const std::string why = "slurmctld: " + j.state;
      if (j.state == "PENDING") lifecycle(j.job, {K::slurm_pending, why, true}, now);
      else if (j.state == "RUNNING") lifecycle(j.job, {K::slurm_running, why, true}, now);
      else if (j.state == "COMPLETED") lifecycle(j.job, {K::ended_ok, why, true}, now);
      else if (j.state == "CANCELLED" || j.state == "PREEMPTED") lifecycle(j.job, {K::cancelled, why, true}, now);
      else if (j.state != "SUSPENDED" && j.state != "UNKNOWN") lifecycle(j.job, {K::ended_failed, why, true}, now);
    }
    if (auto c = store.commit(); !c) {
      spdlog::error("reconciliation: {}", c.error().what());
      store.rollback();
    }
    // Slurm saw a node fail before (or without) us: vigild was down, say.
    for (const SlurmJob& j : jobs)
      if (j.state == "NODE_FAIL") consider_recovery(j.job, RecoveryInput::Trouble::node_fail, j.nodes);
  }

  // Runs between turns: report what went silent, on each affected job's timeline.
  void detect() {
    const std::int64_t now = clock();
    auto found = monitor.tick(now);
    if (found.empty()) return;
    std::vector<Event> events;
    struct TroubleAt {
      std::uint32_t job;
      RecoveryInput::Trouble trouble;
      std::string node;
    };
    std::vector<TroubleAt> troubles;
    for (const Detection& d : found) {
      const double silent_s = static_cast<double>(now - d.silent_since_ns) / 1e9;
      EventType type = EventType::node_recovered;
      const char* what = "recovered";
      if (d.kind == Detection::Kind::node_lost) {
        type = EventType::node_lost;
        what = "lost";
        counters.nodes_lost++;
        spdlog::warn("node {} lost: no sign of life from any of its {} steps for {:.1f} s", d.node, d.steps.size(),
                     silent_s);
        if (cfg.drain_on_node_loss && slurm) {
          char reason[128];
          std::snprintf(reason, sizeof reason, "vigil: no heartbeat for %.0f s", silent_s);
          if (auto st = slurm->drain_node(d.node, reason)) {
            counters.drains++;
            spdlog::warn("node {} drained in Slurm ({})", d.node, reason);
          } else {
            counters.drain_failures++;
            spdlog::error("could not drain node {}: {}", d.node, st.error().message);
          }
        }
      } else if (d.kind == Detection::Kind::step_silent) {
        type = EventType::step_silent;
        what = "silent";
        counters.steps_silent += d.steps.size();
        spdlog::warn("{} step(s) on node {} silent for {:.1f} s (node still alive)", d.steps.size(), d.node,
                     silent_s);
      } else {
        spdlog::info("node {}: {} step(s) heard from again", d.node, d.steps.size());
      }
      for (const StepKey& k : d.steps) {
        if (d.kind == Detection::Kind::node_lost) troubles.push_back({k.job, RecoveryInput::Trouble::node_lost, d.node});
        else if (d.kind == Detection::Kind::step_silent)
          troubles.push_back({k.job, RecoveryInput::Trouble::step_silent, d.node});
        Event e;
        e.id = new_event_id();
        e.type = type;
        e.ts_ns = now;
        e.job = k.job;
        e.step = k.step;
        e.node = k.node;
        e.attrs = {{"by", "vigild"}, {"what", what}, {"silent_s", silent_s},
                   {"last_sign_of_life_ns", d.silent_since_ns}};
        events.push_back(std::move(e));
      }
    }
    if (auto b = store.begin(); !b) return (void)spdlog::error("cannot record detections: {}", b.error().what());
    for (const Event& e : events) {
      if (auto r = store.insert(e, 0, now); !r) {
        spdlog::error("cannot record detection: {}", r.error().what());
        store.rollback();
        return;
      }
      if (auto in = input_of(e)) lifecycle(e.job, *in, now);
    }
    if (auto c = store.commit(); !c) spdlog::error("cannot record detections: {}", c.error().what());
    for (const TroubleAt& t : troubles) consider_recovery(t.job, t.trouble, t.node);
  }


  // ------------------------------------------------------------------
  // Results: HDF5 dumps, early-signal rules, stop-and-gather (ADR 0010, 0011).

  std::unique_ptr<Store> reader;       // the dump writer's own read-only connection
  std::unique_ptr<DumpWriter> dumps;   // null when results_dir is ""
  struct JobResults {
    bool loaded = false;
    bool dump = true;                  // --vigil-results=off: values stored, no file
    bool ended = false;
    bool started = false;              // its start (and options) are known
    bool protect = false;              // --vigil-protect
    int keep = -1;                     // --vigil-keep-checkpoints; -1: the site's
    RuleWatch rules;
    DumpOwner owner;
  };
  std::unordered_map<std::uint32_t, JobResults> jobinfo;
  std::map<std::uint32_t, std::vector<ResultValue>> turn_results;  // handed to the writer at commit
  std::map<std::uint32_t, std::int64_t> finalise_at;               // job -> when (late values grace)
  static constexpr std::int64_t kFinaliseGrace = 2'000'000'000;     // the SDK flushes every 100 ms
  struct Stop {
    std::int64_t requested_ns = 0, deadline_ns = 0, cancel_at_ns = 0;
    std::uint64_t command = 0;        // the checkpoint command sent to the steps
    std::int64_t delivered_ns = -1;   // when a plugin reported delivering it (its clock)
    std::vector<std::pair<std::int64_t, std::string>> early;  // checkpoints seen before that report
    std::string reason, gathered;
  };
  std::map<std::uint32_t, Stop> stops;

  void start_results() {
    if (cfg.results_dir.empty()) return;
    auto r = Store::open(cfg.database, true);
    if (!r) return (void)spdlog::error("result dumps off: {}", r.error().what());
    reader = std::move(*r);
    dumps = std::make_unique<DumpWriter>(
        cfg.results_dir, cfg.results_pattern,
        [this](std::uint32_t job, std::int64_t after, int limit) -> Result<std::vector<ResultValue>> {
          auto evs = reader->events(job, after, limit, std::nullopt, EventType::result);
          if (!evs) return evs.error();
          std::vector<ResultValue> out;
          for (const StoredEvent& s : *evs)
            if (auto v = result_value(s.event, s.seq)) out.push_back(std::move(*v));
          return out;
        });
    // Dumps a previous vigild left open (killed mid-write) are rebuilt from the
    // store; those of jobs that ended meanwhile are finalised.
    auto todo = store.jobs_needing_dump();
    if (!todo) return (void)spdlog::error("cannot list unfinished dumps: {}", todo.error().what());
    for (const auto& [job, ended] : *todo) {
      JobResults& j = job_results(job);
      if (!j.dump) continue;
      if (ended) finalise_at[job] = clock();
      else dumps->rebuild(job, j.owner);
    }
    if (!todo->empty()) spdlog::info("result dumps: {} job(s) to rebuild or finalise", todo->size());
  }

  // What vigild knows about a job's results: owner, options, rules (cached).
  JobResults& job_results(std::uint32_t job) {
    JobResults& j = jobinfo[job];
    if (j.loaded) return j;
    auto start = store.latest(job, EventType::job_start);
    if (!start) start = store.latest(job, EventType::step_start);
    j.loaded = start.has_value();  // until a start is heard of, ask again next time
    if (start && start->event.attrs.contains("options") && start->event.attrs["options"].is_object()) {
      const json& o = start->event.attrs["options"];
      j.started = true;
      if (o.contains("results") && o["results"].is_boolean()) j.dump = o["results"].get<bool>();
      if (o.contains("protect") && o["protect"].is_boolean()) j.protect = o["protect"].get<bool>();
      if (o.contains("keep") && o["keep"].is_number_integer()) j.keep = o["keep"].get<int>();
      if (o.contains("rules") && o["rules"].is_string()) {
        if (auto rules = parse_rules(o["rules"].get<std::string>())) j.rules = RuleWatch(std::move(*rules), clock());
        else spdlog::warn("job {}: ignoring its rules: {}", job, rules.error().message);
      }
    }
    if (auto uid = store.job_owner(job)) {
      j.owner.uid = *uid;
      if (struct passwd* pw = getpwuid(*uid)) {
        j.owner.user = pw->pw_name;
        j.owner.gid = pw->pw_gid;
      }
    }
    if (auto st = store.job_state(job)) j.ended = is_terminal(job_state_from_name(st->first).value_or(JobState::running));
    return j;
  }

  // Inside the open transaction: a stored result value.
  void on_result(const Event& e, std::int64_t seq, std::int64_t now) {
    auto v = result_value(e, seq);
    if (!v) return;
    JobResults& j = job_results(e.job);
    if (!j.rules.empty()) {
      const double* data = v->array ? v->data.data() : &v->value;
      const std::size_t n = v->array ? v->data.size() : 1;
      for (const RuleFiring& f : j.rules.observe(v->stage, v->name, data, n, v->step, now)) fire(e.job, f, now);
    }
    if (dumps && j.dump) {
      turn_results[e.job].push_back(std::move(*v));
      if (j.ended) finalise_at[e.job] = now + kFinaliseGrace;  // a late value: finalise again
    }
  }

  void fire(std::uint32_t job, const RuleFiring& f, std::int64_t now) {
    counters.rules_fired++;
    spdlog::warn("job {}: rule '{}' fired: {} (action: {})", job, f.text, f.why, rule_action_name(f.action));
    json value = f.value;
    if (!std::isfinite(f.value)) value = std::isnan(f.value) ? "nan" : (f.value > 0 ? "inf" : "-inf");
    record(job, EventType::rule_fired,
           {{"by", "vigild"}, {"rule", f.text}, {"why", f.why}, {"action", rule_action_name(f.action)},
            {"stage", f.stage}, {"metric", f.metric}, {"value", value}, {"step", f.step}},
           now);
    if (f.action == Rule::Action::stop && !stops.count(job))
      begin_stop(job, true, "rule '" + f.text + "': " + f.why, cfg.stop_gather_timeout_s, now);
  }

  // A controller event on a job's timeline, in the open transaction or its own.
  void record(std::uint32_t job, EventType type, json attrs, std::int64_t now) {
    Event e;
    e.id = new_event_id();
    e.type = type;
    e.ts_ns = now;
    e.job = job;
    e.attrs = std::move(attrs);
    const bool own = !in_txn;
    if (own) {
      if (auto b = store.begin(); !b) return (void)spdlog::error("cannot record {}: {}", event_type_name(type), b.error().what());
    }
    if (auto r = store.insert(e, 0, now); !r) spdlog::error("cannot record {}: {}", event_type_name(type), r.error().what());
    if (!own) return;
    if (auto c = store.commit(); !c) {
      spdlog::error("cannot record {}: {}", event_type_name(type), c.error().what());
      store.rollback();
    }
  }

  void job_ended(std::uint32_t job, std::int64_t now) {
    if (auto it = jobinfo.find(job); it != jobinfo.end()) it->second.ended = true;
    if (dumps) finalise_at[job] = now + kFinaliseGrace;
    stops.erase(job);
  }

  // Stop-and-gather: ask every running step to checkpoint (the job's own
  // checkpoint signal), then cancel the job in Slurm once a checkpoint is
  // reported or the timeout passes; the dump is finalised when it has ended.
  Result<json> begin_stop(std::uint32_t job, bool gather, const std::string& reason, int timeout_s, std::int64_t now) {
    Stop st;
    st.requested_ns = now;
    st.reason = reason;
    PendingCommand c;
    c.cmd = {next_command_id++, "checkpoint", "stop"};
    c.job = job;
    c.created_ns = now;
    c.targets = signal_targets(job);
    const json targets = targets_json(c.targets);
    if (gather && !c.targets.empty()) {
      st.deadline_ns = now + static_cast<std::int64_t>(timeout_s) * 1'000'000'000;
      st.command = c.cmd.id;
      commands.push_back(std::move(c));
    } else {
      st.cancel_at_ns = now;  // nothing to gather from: cancel at once
      st.gathered = gather ? "no running step to checkpoint" : "no gather asked";
    }
    counters.stops++;
    spdlog::warn("job {}: stop{} requested: {}", job, gather ? " and gather" : "", reason);
    record(job, EventType::stop,
           {{"by", "vigild"}, {"what", "requested"}, {"reason", reason}, {"gather", gather},
            {"timeout_s", timeout_s}, {"targets", targets}},
           now);
    stops[job] = std::move(st);
    return json{{"targets", targets}, {"timeout_s", timeout_s}, {"after_seq", store.event_count()}};
  }

  // The answer to a stop's checkpoint signal is the first checkpoint the
  // simulation reports after the signal reached it (a periodic one already
  // under way when the request came does not count). Either report may arrive
  // first: the plugin's and the SDK's sessions are independent.
  void on_signal_delivered(const Event& e, std::int64_t now) {
    auto it = stops.find(e.job);
    if (it == stops.end() || !it->second.command || e.attrs.value("command", std::uint64_t{0}) != it->second.command)
      return;
    Stop& st = it->second;
    if (st.delivered_ns < 0 || e.ts_ns < st.delivered_ns) st.delivered_ns = e.ts_ns;
    for (const auto& [ts, what] : st.early)
      if (ts >= st.delivered_ns) return gathered(st, what, now);
  }

  void on_checkpoint(const Event& e, std::int64_t now) {
    auto it = stops.find(e.job);
    if (it == stops.end() || it->second.cancel_at_ns) return;
    Stop& st = it->second;
    const std::string what = "checkpoint " + e.attrs.value("path", std::string("?")) + " at step " +
                             std::to_string(e.attrs.value("step", std::int64_t{-1}));
    if (st.command && (st.delivered_ns < 0 || e.ts_ns < st.delivered_ns)) {
      if (st.early.size() < 64) st.early.emplace_back(e.ts_ns, what);
      return;
    }
    gathered(st, what, now);
  }

  void gathered(Stop& st, const std::string& what, std::int64_t now) {
    if (st.cancel_at_ns) return;
    // Give the simulation's last values a moment to arrive (the SDK sends every 100 ms).
    st.cancel_at_ns = now + 1'000'000'000;
    st.gathered = what;
  }

  // Between turns: stops due, stall rules, dumps to finalise, finalised dumps.
  void tick_results() {
    const std::int64_t now = clock();
    for (auto it = stops.begin(); it != stops.end();) {
      Stop& st = it->second;
      const bool timed_out = st.deadline_ns && now >= st.deadline_ns && !st.cancel_at_ns;
      if (!timed_out && !(st.cancel_at_ns && now >= st.cancel_at_ns)) {
        ++it;
        continue;
      }
      const std::uint32_t job = it->first;
      std::string why = timed_out ? "no checkpoint reported within the timeout" : st.gathered;
      Status cancelled = slurm ? slurm->cancel_job(job) : Status(make_error(Errc::unavailable, "no Slurm connection"));
      if (!cancelled) spdlog::error("job {}: cannot cancel: {}", job, cancelled.error().message);
      record(job, EventType::stop,
             {{"by", "vigild"}, {"what", cancelled ? "cancelled" : "cancel_failed"}, {"gathered", why},
              {"reason", st.reason}, {"error", cancelled ? "" : cancelled.error().message}},
             now);
      it = stops.erase(it);
      if (cancelled) {
        if (auto b = store.begin(); b) {
          lifecycle(job, {LifecycleInput::Kind::stopped, why}, now);
          if (auto c = store.commit(); !c) store.rollback();
        }
      }
    }
    for (auto& [job, j] : jobinfo) {
      if (j.ended || j.rules.empty()) continue;
      for (const RuleFiring& f : j.rules.tick(now)) fire(job, f, now);
    }
    if (!dumps) return;
    for (auto it = finalise_at.begin(); it != finalise_at.end();) {
      if (now < it->second) {
        ++it;
        continue;
      }
      JobResults& j = job_results(it->first);
      if (j.dump) dumps->finalise(it->first, j.owner, "job ended");
      it = finalise_at.erase(it);
    }
    for (DumpFinal& d : dumps->take_finished()) {
      if (d.ok && d.files.empty()) continue;  // a job without results
      json files = json::array();
      for (const DumpFileInfo& f : d.files) files.push_back({{"path", f.path}, {"bytes", f.bytes}, {"sha256", f.sha256}});
      record(d.job, EventType::results_final,
             {{"by", "vigild"}, {"ok", d.ok}, {"error", d.error}, {"files", files}, {"records", d.records},
              {"last_step", d.last_step}},
             now);
      if (auto it = jobinfo.find(d.job); it != jobinfo.end() && it->second.ended && !finalise_at.count(d.job))
        jobinfo.erase(it);  // reloaded from the store if anything else arrives
    }
  }

  // The `results` query behind `vigil tail`: values after a sequence number;
  // arrays come summarised (shape, min, max, mean, non-finite count).
  Result<json> query_results(const Caller& who, const json& req, int limit) {
    if (!req.contains("job") || !req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
      return make_error(Errc::malformed, "results request needs 'job'");
    const auto job = req["job"].get<std::uint32_t>();
    const auto owner = store.job_owner(job);
    if (!owner || (!who.admin && *owner != who.uid))
      return make_error(Errc::denied, "job " + std::to_string(job) + " is not yours or unknown");
    const std::int64_t after =
        req.contains("after") && req["after"].is_number_integer() ? req["after"].get<std::int64_t>() : 0;
    auto evs = store.events(job, after, limit, std::nullopt, EventType::result);
    if (!evs) return evs.error();
    json values = json::array();
    std::int64_t last = after;
    for (const StoredEvent& s : *evs) {
      last = s.seq;
      auto v = result_value(s.event, s.seq);
      if (!v) continue;
      json o = {{"seq", v->seq}, {"stage", v->stage}, {"name", v->name}, {"units", v->units}, {"step", v->step},
                {"sim_t", v->sim_time}, {"wall_ns", v->wall_ns}, {"kind", v->array ? "array" : "scalar"}};
      if (!v->array) {
        o["v"] = v->value;
      } else {
        double lo = 0, hi = 0, sum = 0;
        std::size_t finite = 0;
        for (double x : v->data) {
          if (!std::isfinite(x)) continue;
          lo = finite ? std::min(lo, x) : x;
          hi = finite ? std::max(hi, x) : x;
          sum += x;
          ++finite;
        }
        o["dims"] = v->dims;
        o["min"] = lo;
        o["max"] = hi;
        o["mean"] = finite ? sum / static_cast<double>(finite) : 0.0;
        o["nonfinite"] = v->data.size() - finite;
      }
      values.push_back(std::move(o));
    }
    json out = {{"job", job}, {"values", values}, {"last_seq", last}};
    if (auto st = store.job_state(job)) out["state"] = st->first;
    if (auto fin = store.latest(job, EventType::results_final)) out["final"] = fin->event.attrs;
    if (dumps) {
      JobResults& j = job_results(job);
      if (auto p = dump_path(cfg.results_dir, cfg.results_pattern, j.owner, job); p && j.dump) out["file"] = *p;
    }
    return out;
  }

  Result<json> request_stop(const Caller& who, const json& req) {
    if (!req.contains("job") || !req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
      return make_error(Errc::malformed, "stop request needs 'job'");
    const auto job = req["job"].get<std::uint32_t>();
    if (!who.admin && store.job_owner(job) != who.uid)
      return make_error(Errc::denied, "job " + std::to_string(job) + " is not yours");
    auto st = store.job_state(job);
    if (!st) return make_error(Errc::unavailable, "job " + std::to_string(job) + " is unknown to vigild");
    if (is_terminal(job_state_from_name(st->first).value_or(JobState::running)))
      return make_error(Errc::unavailable, "job " + std::to_string(job) + " has already ended (" + st->first + ")");
    if (stops.count(job)) return make_error(Errc::unavailable, "job " + std::to_string(job) + " is already stopping");
    const bool gather = req.value("gather", true);
    int timeout = cfg.stop_gather_timeout_s;
    if (req.contains("timeout_s") && req["timeout_s"].is_number_unsigned())
      timeout = static_cast<int>(std::clamp<std::uint64_t>(req["timeout_s"].get<std::uint64_t>(), 1, 3600));
    return begin_stop(job, gather, "requested by uid " + std::to_string(who.uid), timeout, clock());
  }

  // ------------------------------------------------------------------
  // Checkpoint ledger and automatic recovery (ADR 0012).

  DigestWorker digests;
  std::uint64_t next_token = 1;
  std::unordered_map<std::uint32_t, std::vector<CheckpointEntry>> ledger;  // verified, oldest first
  struct RestartWaiter {
    std::string rid;
    std::uint64_t session = 0, seq = 0;
  };
  std::multimap<std::uint64_t, RestartWaiter> restart_waiters;  // token -> who asked
  // One choice per attempt: every node of a restarted job asks; the first
  // question digests, the others wait for it or get the answer remembered.
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> choosing;  // (job, restart) -> token
  std::map<std::pair<std::uint32_t, std::uint32_t>, json> chosen;             // (job, restart) -> answer
  std::map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> token_attempt;
  struct Requeue {
    std::int64_t at_ns = 0;
    std::vector<std::string> down;  // lost nodes: marked DOWN, then excluded
    std::uint32_t restart = 0;
  };
  std::map<std::uint32_t, Requeue> requeues;                     // decided, waiting for the backoff
  std::map<std::uint32_t, std::pair<std::string, std::int64_t>> excludes;  // job -> nodes, retry until
  std::map<std::uint32_t, std::int64_t> exclude_next;            // job -> next attempt
  // When a requeued job may be made eligible again (its begin time reset).
  // Slurm tells a running srun about one failed node only; with several lost
  // at once, the failed attempt's srun on a surviving batch host waits
  // KillWait + 2 s for the other dead nodes' tasks, then cancels "its" step —
  // which by then would be the new attempt's step of the same id. So with
  // more than one lost node and a live batch host, the release waits for that
  // srun to be gone: its batch step ended (job_end) and KillWait + 3 s passed.
  // Otherwise, and after vigild restarts, at once.
  std::map<std::uint32_t, std::int64_t> release_at;
  std::map<std::uint32_t, std::int64_t> release_after;  // job -> earliest, once job_end is in
  int kill_wait_s = -1;                                  // slurm.conf KillWait, asked once
  std::map<std::uint32_t, std::uint32_t> decided;                // job -> restart count a decision covers

  const std::vector<CheckpointEntry>& ledger_of(std::uint32_t job) {
    auto it = ledger.find(job);
    if (it != ledger.end()) return it->second;
    std::vector<CheckpointEntry>& out = ledger[job];
    if (auto evs = store.events(job, 0, 100000, std::nullopt, EventType::checkpoint_verified))
      for (const StoredEvent& s : *evs)
        if (s.event.attrs.value("ok", false)) out.push_back(entry_from(s.event.attrs));
    if (out.empty()) return out;
    if (auto evs = store.events(job, 0, 100000, std::nullopt, EventType::checkpoint_pruned))
      for (const StoredEvent& s : *evs)
        forget_checkpoint(out, s.event.attrs.value("path", std::string()), s.event.attrs.value("sha256", std::string()));
    return out;
  }

  // A checkpoint is its file and its content: pruned or skipped, it leaves the ledger.
  static void forget_checkpoint(std::vector<CheckpointEntry>& l, const std::string& path, const std::string& sha) {
    std::erase_if(l, [&](const CheckpointEntry& c) { return c.path == path && c.sha256 == sha; });
  }

  static CheckpointEntry entry_from(const json& a) {
    CheckpointEntry c;
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
  void ledger_add(const Event& e) {
    CheckpointEntry c;
    c.path = e.attrs.value("path", std::string());
    c.step = e.attrs.value("step", std::int64_t{0});
    if (e.attrs.contains("sim_t") && e.attrs["sim_t"].is_number()) c.sim_time = e.attrs["sim_t"].get<double>();
    c.node = e.node;
    c.reported_ns = e.ts_ns;
    c.restart = e.restart;
    DigestWorker::Task t;
    t.kind = DigestWorker::Task::Kind::ledger;
    t.token = next_token++;
    t.job = e.job;
    t.owner = job_results(e.job).owner.uid;
    t.entry = std::move(c);
    digests.submit(std::move(t));
  }

  // `restart_from` (the plugin of a restarted job, or the owner): the newest
  // checkpoint whose file still matches its digest. Answered when the worker
  // has re-digested it; skips are events.
  void on_restart_from(const Session& s, const std::string& rid, const FrameView& f, const json& req) {
    auto fail = [&](Errc code, const std::string& m) {
      send(rid, encode_frame(FrameKind::reply, f.header.session, f.header.seq, encode_reply_error(code, m), s.key.get()));
    };
    if (!req.contains("job") || !req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
      return fail(Errc::malformed, "restart_from needs 'job'");
    const auto job = req["job"].get<std::uint32_t>();
    if (s.uid != 0 && !s.admin && store.job_owner(job) != s.uid)
      return fail(Errc::denied, "job " + std::to_string(job) + " is not yours");
    const std::pair<std::uint32_t, std::uint32_t> attempt{job, req.value("restart", 0u)};
    if (auto c = chosen.find(attempt); c != chosen.end())
      return send(rid, encode_frame(FrameKind::reply, f.header.session, f.header.seq, encode_reply_ok(c->second),
                                    s.key.get()));
    if (auto c = choosing.find(attempt); c != choosing.end()) {
      restart_waiters.emplace(c->second, RestartWaiter{rid, f.header.session, f.header.seq});
      return;
    }
    const auto& verified = ledger_of(job);
    if (verified.empty()) {
      const std::string body = encode_reply_ok(json{{"job", job}, {"path", nullptr}});
      return send(rid, encode_frame(FrameKind::reply, f.header.session, f.header.seq, body, s.key.get()));
    }
    DigestWorker::Task t;
    t.kind = DigestWorker::Task::Kind::choose;
    t.token = next_token++;
    t.job = job;
    t.owner = job_results(job).owner.uid;
    t.candidates.assign(verified.rbegin(), verified.rend());
    restart_waiters.emplace(t.token, RestartWaiter{rid, f.header.session, f.header.seq});
    choosing[attempt] = t.token;
    token_attempt[t.token] = attempt;
    digests.submit(std::move(t));
  }

  void tick_checkpoints() {
    const std::int64_t now = clock();
    for (DigestWorker::Done& d : digests.take_done()) {
      if (d.kind == DigestWorker::Task::Kind::prune) {
        if (d.name.empty()) pruned(d.job, d.entry, d.why, d.error.empty(), d.error, now);
        else if (d.error.empty()) spdlog::info("job {}: output {}: duplicate copy {} removed", d.job, d.name, d.entry.path);
        else spdlog::warn("job {}: output {}: duplicate copy not removed: {}", d.job, d.name, d.error);
        continue;
      }
      if (d.kind == DigestWorker::Task::Kind::output) {
        register_output(d, now);
        continue;
      }
      if (d.kind == DigestWorker::Task::Kind::ledger) {
        const bool ok = d.error.empty();
        json a = {{"by", "vigild"},        {"ok", ok},          {"path", d.entry.path},
                  {"bytes", d.entry.bytes}, {"sha256", d.entry.sha256}, {"step", d.entry.step},
                  {"sim_t", d.entry.sim_time}, {"node", d.entry.node}, {"restart", d.entry.restart},
                  {"reported_ns", d.entry.reported_ns}, {"digest_s", d.seconds}};
        if (!ok) {
          a["error"] = d.error;
          spdlog::warn("job {}: checkpoint {} not verified: {}", d.job, d.entry.path, d.error);
        }
        ledger_of(d.job);  // loaded before the new entry is stored, so it is added once
        if (ok) a["mtime_ns"] = d.entry.mtime_ns;
        record(d.job, EventType::checkpoint_verified, std::move(a), now);
        if (ok) {
          ledger[d.job].push_back(d.entry);
          run_retention(d.job, false, now);
        }
        continue;
      }
      for (const auto& [c, why] : d.skipped) {
        spdlog::warn("job {}: checkpoint {} (step {}) skipped: {}", d.job, c.path, c.step, why);
        record(d.job, EventType::checkpoint_skipped,
               {{"by", "vigild"}, {"path", c.path}, {"step", c.step}, {"sha256", c.sha256}, {"why", why}}, now);
        forget_checkpoint(ledger[d.job], c.path, c.sha256);
      }
      json out = {{"job", d.job}, {"path", nullptr}, {"skipped", d.skipped.size()}};
      if (d.chosen) {
        out["path"] = d.chosen->path;
        out["step"] = d.chosen->step;
        out["sha256"] = d.chosen->sha256;
        record(d.job, EventType::recovery,
               {{"by", "vigild"}, {"action", "resume"}, {"path", d.chosen->path}, {"step", d.chosen->step},
                {"sha256", d.chosen->sha256}, {"skipped", d.skipped.size()}},
               now);
      }
      if (auto ta = token_attempt.find(d.token); ta != token_attempt.end()) {
        choosing.erase(ta->second);
        if (chosen.size() > 10000) chosen.clear();  // a bound; a forgotten answer is recomputed
        chosen[ta->second] = out;
        token_attempt.erase(ta);
      }
      auto [first, last] = restart_waiters.equal_range(d.token);
      for (auto w = first; w != last; ++w) {
        auto sit = sessions.find(w->second.session);
        if (sit != sessions.end())
          send(w->second.rid, encode_frame(FrameKind::reply, w->second.session, w->second.seq, encode_reply_ok(out),
                                           sit->second.key.get()));
      }
      restart_waiters.erase(first, last);
    }
  }

  // Retry or fail, decided once per attempt (several lost nodes are one failure).
  void consider_recovery(std::uint32_t job, RecoveryInput::Trouble trouble, const std::string& node) {
    if (!cfg.recovery || !slurm) return;
    const auto start = store.latest(job, EventType::job_start);
    if (!start) return;  // not a batch job: nothing Slurm can requeue
    // A node recovery already took out of this job: what is still watched there
    // are the failed attempt's steps, not news.
    if (!node.empty() && already_down(job, node)) return;
    const std::int64_t now = clock();
    auto st = store.job_state(job);
    if (!st) return;
    const auto state = job_state_from_name(st->first).value_or(JobState::running);
    if (state == JobState::stopped || state == JobState::cancelled || state == JobState::completed) return;
    RecoveryInput in;
    in.trouble = trouble;
    in.node = node;
    in.restart = std::max(st->second, start->event.restart);  // the newest job_start: the newest attempt
    if (auto d = decided_for(job)) in.decided_for_restart = *d;
    if (start->event.attrs.contains("options") && start->event.attrs["options"].contains("retries") &&
        start->event.attrs["options"]["retries"].is_number_integer())
      in.job_retries = start->event.attrs["options"]["retries"].get<int>();
    in.has_checkpoint = !ledger_of(job).empty();
    if (auto evs = store.events(job, 0, 100000, std::nullopt, EventType::recovery))
      for (const StoredEvent& r : *evs)
        if (r.event.attrs.value("planned", false) && r.event.attrs.value("action", std::string()) == "requeue")
          in.planned_requeues++;
    RecoveryPolicy pol;
    pol.default_retries = cfg.default_retries;
    pol.backoff_base_s = cfg.retry_backoff_s;
    pol.backoff_max_s = cfg.retry_backoff_max_s;
    const RecoveryDecision d = decide_recovery(pol, in);
    if (d.action == RecoveryDecision::Action::none) {
      // Another node of the same failed attempt: excluded and marked DOWN too,
      // with the pending requeue or, if that has happened, at once (a dead node
      // Slurm still thinks alive would hold the job's old steps).
      if (node.empty() || trouble != RecoveryInput::Trouble::node_lost) return;
      if (auto it = requeues.find(job); it != requeues.end()) {
        it->second.down.push_back(node);
      } else {
        if (auto s = slurm->down_node(node, "vigil: lost (job " + std::to_string(job) + ")"); !s)
          spdlog::error("job {}: {}", job, s.error().message);
        record(job, EventType::recovery, {{"by", "vigild"}, {"action", "down"}, {"node", node},
                                          {"restart", in.restart}}, now);
        auto& ex = excludes[job];
        ex.first += (ex.first.empty() ? "" : ",") + node;
        ex.second = now + 10'000'000'000LL;
      }
      return;
    }
    decided[job] = in.restart;
    const char* action = d.action == RecoveryDecision::Action::requeue ? "requeue" : "fail";
    json a = {{"by", "vigild"},      {"action", action},      {"attempt", d.attempt}, {"budget", d.budget},
              {"restart", in.restart}, {"trouble", trouble_name(trouble)}, {"node", node},
              {"delay_s", d.delay_s},  {"reason", d.reason}};
    if (in.has_checkpoint) a["newest_checkpoint"] = ledger_of(job).back().path;
    spdlog::warn("job {}: recovery: {} — {}", job, action, d.reason);
    record(job, EventType::recovery, std::move(a), now);
    const bool own = !in_txn;
    if (own && !store.begin()) return;
    if (d.action == RecoveryDecision::Action::requeue) {
      lifecycle(job, {LifecycleInput::Kind::requeued, "vigil: " + d.reason}, now);
      Requeue& r = requeues[job];
      r.at_ns = now + static_cast<std::int64_t>(d.delay_s * 1e9);
      r.restart = in.restart;
      if (!node.empty() && trouble == RecoveryInput::Trouble::node_lost) r.down.push_back(node);
    } else {
      lifecycle(job, {LifecycleInput::Kind::ended_failed, d.reason}, now);
      // A dead node would hold the cancelled job in COMPLETING until Slurm's own
      // SlurmdTimeout: mark it DOWN as a requeue would.
      // Cancelled first, so Slurm does not requeue it when the node goes DOWN.
      if (auto c = slurm->cancel_job(job); !c) spdlog::error("job {}: {}", job, c.error().message);
      if (!node.empty() && trouble == RecoveryInput::Trouble::node_lost)
        if (auto s = slurm->down_node(node, "vigil: lost (job " + std::to_string(job) + " failed)"); !s)
          spdlog::error("job {}: {}", job, s.error().message);
    }
    if (own && !store.commit()) store.rollback();
  }

  std::optional<std::uint32_t> decided_for(std::uint32_t job) {
    if (auto it = decided.find(job); it != decided.end()) return it->second;
    // After a restart of vigild: the newest decision on the timeline.
    auto evs = store.events(job, 0, 100000, std::nullopt, EventType::recovery);
    if (!evs) return std::nullopt;
    for (auto it = evs->rbegin(); it != evs->rend(); ++it) {
      const std::string act = it->event.attrs.value("action", std::string());
      if (act == "requeue" || act == "fail") return decided[job] = it->event.attrs.value("restart", 0u);
    }
    return std::nullopt;
  }

  bool already_down(std::uint32_t job, const std::string& node) {
    if (auto it = requeues.find(job); it != requeues.end() &&
        std::find(it->second.down.begin(), it->second.down.end(), node) != it->second.down.end())
      return true;
    auto evs = store.events(job, 0, 100000, std::nullopt, EventType::recovery);
    if (!evs) return false;
    for (const StoredEvent& e : *evs) {
      const std::string act = e.event.attrs.value("action", std::string());
      std::string list = act == "requeued" ? e.event.attrs.value("down", std::string())
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

  // The recovery policy ended this job (budget spent): Slurm's later view
  // (CANCELLED, a requeue by a DOWN node) does not change its FAILED.
  bool failed_by_policy(std::uint32_t job) {
    auto st = store.job_state(job);
    if (!st || st->first != "FAILED") return false;
    auto e = store.latest(job, EventType::recovery);
    return e && e->event.attrs.value("action", std::string()) == "fail";
  }

  // The first news of a job's next attempt (a higher restart count): the
  // previous attempt's steps are no longer watched — their nodes may be dead
  // (already handled) or their step_end may be spooled on a node while vigild
  // was down; either way their silence is not this attempt's trouble.
  std::unordered_map<std::uint32_t, std::uint32_t> attempt_seen;
  void new_attempt(const Event& e) {
    if (e.node.empty()) return;
    auto it = attempt_seen.find(e.job);
    if (it == attempt_seen.end()) it = attempt_seen.emplace(e.job, current_restart(e.job)).first;
    if (e.restart <= it->second) return;
    it->second = e.restart;
    for (const StepKey& k : monitor.steps_of(e.job)) monitor.ended(k);
  }

  // The highest restart count any event of the job carried.
  std::uint32_t current_restart(std::uint32_t job) {
    auto s = store.latest(job, EventType::job_start);
    return s ? s->event.restart : 0;
  }

  // An older attempt's end (its batch script killed by the requeue) must not
  // end a job that recovery has decided about.
  bool stale_attempt(const Event& e) const {
    auto it = decided.find(e.job);
    return it != decided.end() && e.restart <= it->second &&
           (e.type == EventType::job_end || e.type == EventType::task_exit);
  }

  // The failed attempt's batch step has ended: the requeued job may run again.
  void old_attempt_ended(const Event& e, std::int64_t now) {
    auto after = release_after.find(e.job);
    auto rel = release_at.find(e.job);
    auto ex = excludes.find(e.job);
    if (after == release_after.end() || rel == release_at.end() || ex == excludes.end() || !stale_attempt(e)) return;
    rel->second = std::max(now, after->second);
    ex->second.second = rel->second + 10'000'000'000LL;
    release_after.erase(after);
    spdlog::info("job {}: the failed attempt's batch step has ended", e.job);
  }

  // After a restart: a requeue that was decided but not carried out (vigild
  // died during the backoff) is carried out now.
  void resume_recovery() {
    auto rows = store.jobs(std::nullopt, 100000);
    if (!rows) return;
    for (const JobRow& j : *rows) {
      if (j.state != "RECOVERING") continue;
      auto evs = store.events(j.job, 0, 100000, std::nullopt, EventType::recovery);
      if (!evs || evs->empty()) continue;
      const json& last = evs->back().event.attrs;
      if (last.value("action", std::string()) != "requeue") continue;
      Requeue& r = requeues[j.job];
      r.at_ns = clock();
      r.restart = last.value("restart", 0u);
      decided[j.job] = r.restart;
      const std::string node = last.value("node", std::string());
      if (!node.empty() && last.value("trouble", std::string()) == trouble_name(RecoveryInput::Trouble::node_lost))
        r.down.push_back(node);
      spdlog::info("job {}: carrying out the requeue decided before the restart", j.job);
    }
  }

  void tick_recovery() {
    const std::int64_t now = clock();
    for (auto it = requeues.begin(); it != requeues.end();) {
      if (now < it->second.at_ns) {
        ++it;
        continue;
      }
      const std::uint32_t job = it->first;
      const Requeue r = it->second;
      it = requeues.erase(it);
      std::string errors, nodes;
      for (const std::string& n : r.down) nodes += (nodes.empty() ? "" : ",") + n;
      // All lost nodes in one update: one failure, one requeue by Slurm.
      if (!nodes.empty())
        if (auto s = slurm->down_node(nodes, "vigil: lost (job " + std::to_string(job) + " requeued)"); !s)
          errors += s.error().message + "; ";
      const Status q = slurm->requeue_job(job);
      if (!q) errors += q.error().message + "; ";
      // The old attempt's steps stay watched: one on a node that also died is
      // declared lost later, and that node is marked DOWN then (see below).
      const auto start = store.latest(job, EventType::job_start);
      const bool batch_host_lost =
          start && std::find(r.down.begin(), r.down.end(), start->event.node) != r.down.end();
      release_at[job] = now;
      if (r.down.size() > 1 && start && !batch_host_lost) {
        if (kill_wait_s < 0) {
          auto k = slurm->kill_wait_s();
          kill_wait_s = k ? *k : 30;  // Slurm's default
        }
        const std::int64_t srun_gone = now + (kill_wait_s + 3) * 1'000'000'000LL;
        auto ended = store.latest(job, EventType::job_end);
        if (ended && ended->event.restart >= r.restart) release_at[job] = srun_gone;
        else {
          release_at[job] = srun_gone + 60'000'000'000LL;  // at the latest, should job_end never come
          release_after[job] = srun_gone;
        }
        spdlog::info("job {}: {} nodes lost at once; released once its old srun is gone", job, r.down.size());
      }
      excludes[job] = {nodes, release_at[job] + 10'000'000'000LL};
      spdlog::warn("job {}: requeued{}{}", job, nodes.empty() ? "" : ", excluding " + nodes,
                   errors.empty() ? "" : " (" + errors + ")");
      record(job, EventType::recovery,
             {{"by", "vigild"}, {"action", q ? "requeued" : "requeue_failed"}, {"restart", r.restart},
              {"down", nodes}, {"error", errors}},
             now);
    }
    // Once Slurm has requeued the job it holds it back until its credential
    // expires (cred_expire, 120 s by default) and it must avoid the lost nodes:
    // vigild makes it eligible now and excludes them, repeating once a second
    // for 10 s because Slurm's requeue completes asynchronously.
    for (auto it = excludes.begin(); it != excludes.end();) {
      auto& [nodes, until] = it->second;
      if (now > until) {
        it = excludes.erase(it);
        continue;
      }
      if (now >= exclude_next[it->first]) {
        exclude_next[it->first] = now + 1'000'000'000;
        const auto rel = release_at.find(it->first);
        const bool release = rel == release_at.end() || now >= rel->second;
        if (auto s = slurm->exclude_nodes(it->first, nodes, release); !s)
          spdlog::debug("job {}: release/exclude: {}", it->first, s.error().message);
      }
      ++it;
    }
    std::erase_if(exclude_next, [&](const auto& kv) { return !excludes.count(kv.first); });
    std::erase_if(release_at, [&](const auto& kv) { return !excludes.count(kv.first); });
    std::erase_if(release_after, [&](const auto& kv) { return !excludes.count(kv.first); });
  }

  // ------------------------------------------------------------------
  // Checkpoint strategies, long-run protection, retention (ADR 0013).

  CheckpointPlanner planner;
  std::int64_t next_plan_ns = 0;

  PlanConfig plan_config() const {
    PlanConfig p;
    p.before_end_s = cfg.checkpoint_before_end_s;
    p.before_maintenance_s = cfg.checkpoint_before_maintenance_s;
    p.on_preemption = cfg.checkpoint_on_preemption;
    p.fresh_s = cfg.protect_fresh_s;
    p.protect_wait_s = cfg.protect_wait_s;
    p.protect_min_time_limit_min = cfg.protect_min_time_limit_min;
    return p;
  }

  // Once a second: the running jobs (slurmctld's view) against the strategies.
  void tick_plan() {
    if (!slurm || cfg.reconcile_interval_s <= 0) return;
    const std::int64_t now = clock();
    if (now < next_plan_ns) return;
    next_plan_ns = now + 1'000'000'000;
    std::vector<SlurmJob> running;
    std::vector<SlurmReservation> resv;
    {
      std::lock_guard<std::mutex> g(recon_mu);
      running = view_running;
      resv = view_reservations;
    }
    std::vector<PlanJob> jobs;
    for (const SlurmJob& j : running) {
      const JobResults& info = job_results(j.job);
      if (!info.started) continue;  // not (yet) a Vigil job: nothing to signal (slurmctld says it runs)
      PlanJob p;
      p.job = j.job;
      p.restart = j.restart;
      p.nodes = j.node_names;
      p.start_time = j.start_time;
      p.end_time = j.end_time;
      p.preempt_time = j.preempt_time;
      p.time_limit_min = j.time_limit_min >= 0xfffffffeu ? 0 : j.time_limit_min;
      p.protect = info.protect;
      if (const auto& l = ledger_of(j.job); !l.empty()) p.last_verified = l.back().reported_ns / 1'000'000'000;
      jobs.push_back(std::move(p));
    }
    std::vector<Maintenance> maint;
    for (const SlurmReservation& r : resv)
      if (r.maintenance) maint.push_back({r.name, r.start_time, r.end_time, r.node_names});
    planner.configure(plan_config());
    for (const PlanAction& a : planner.tick(static_cast<std::time_t>(now / 1'000'000'000), jobs, maint))
      carry_out(a, now);
  }

  void carry_out(const PlanAction& a, std::int64_t now) {
    switch (a.kind) {
      case PlanAction::Kind::checkpoint: {
        auto r = checkpoint_command(a.job, a.trigger);
        json attrs = {{"by", "vigild"}, {"trigger", a.trigger}, {"reason", a.reason}, {"restart", a.restart}};
        if (r) attrs["command"] = (*r)["command"];
        else attrs["error"] = r.error().message;
        spdlog::info("job {}: checkpoint asked ({}): {}{}", a.job, a.trigger, a.reason,
                     r ? "" : " — " + r.error().message);
        record(a.job, EventType::checkpoint_requested, std::move(attrs), now);
        break;
      }
      case PlanAction::Kind::requeue: {
        // A clean requeue: not a failure, so it does not spend the retry budget
        // (consider_recovery counts `planned` requeues out).
        decided[a.job] = a.restart;
        json attrs = {{"by", "vigild"}, {"action", "requeue"}, {"planned", true}, {"trouble", a.trigger},
                      {"restart", a.restart}, {"reason", a.reason}, {"delay_s", 0}};
        if (const auto& l = ledger_of(a.job); !l.empty()) attrs["newest_checkpoint"] = l.back().path;
        spdlog::warn("job {}: {}", a.job, a.reason);
        record(a.job, EventType::recovery, std::move(attrs), now);
        if (store.begin()) {
          lifecycle(a.job, {LifecycleInput::Kind::requeued, "vigil: " + a.reason}, now);
          if (!store.commit()) store.rollback();
        }
        requeues[a.job] = Requeue{now, {}, a.restart};
        break;
      }
      case PlanAction::Kind::hold:
        spdlog::warn("job {}: {}", a.job, a.reason);
        record(a.job, EventType::recovery,
               {{"by", "vigild"}, {"action", "hold"}, {"trouble", a.trigger}, {"restart", a.restart},
                {"reason", a.reason}},
               now);
        break;
    }
  }

  // After a verified checkpoint (or a failed write for want of space): delete
  // what retention and the user's storage budget no longer keep. Deletions run
  // on the digest worker with the user's file-system identity.
  void run_retention(std::uint32_t job, bool disk_full, std::int64_t now) {
    const JobResults& info = job_results(job);
    const uid_t uid = info.owner.uid;
    RetentionConfig rc;
    rc.keep = cfg.checkpoint_keep;
    rc.user_budget_bytes = cfg.checkpoint_budget_mb_per_user << 20;
    if (rc.keep == 0 && rc.user_budget_bytes == 0 && info.keep < 0 && !disk_full) return;  // keep everything
    std::vector<JobCheckpoints> mine;
    auto add = [&](std::uint32_t j) {
      const auto& l = ledger_of(j);
      if (l.empty()) return;
      // Out of space: keep only the newest of the job that could not write.
      const int keep = disk_full && j == job ? 1 : job_results(j).keep;
      mine.push_back({j, keep, l});
    };
    add(job);
    if (rc.user_budget_bytes > 0 && uid != 0)
      if (auto rows = store.jobs(uid, 10000))
        for (const JobRow& r : *rows)
          if (r.job != job) add(r.job);
    const RetentionPlan plan = plan_retention(rc, mine);
    if (plan.over_budget)
      spdlog::warn("uid {}: checkpoints still over the budget ({} bytes): only newest ones are left", uid,
                   plan.kept_bytes);
    for (const Prune& p : plan.prune) {
      const std::string reason = disk_full && p.job == job ? "disk full: " + p.reason : p.reason;
      forget_checkpoint(ledger[p.job], p.entry.path, p.entry.sha256);
      if (!p.delete_file) {
        pruned(p.job, p.entry, reason, false, "", now);
        continue;
      }
      submit_prune(p.job, p.entry, reason);
    }
  }

  // Delete a file on the digest worker, as the job's user (ledger.cpp). `output`:
  // the registry name of a duplicate output; empty for a checkpoint.
  void submit_prune(std::uint32_t job, const CheckpointEntry& entry, const std::string& why,
                    const std::string& output = {}) {
    DigestWorker::Task t;
    t.kind = DigestWorker::Task::Kind::prune;
    t.token = next_token++;
    t.job = job;
    t.owner = job_results(job).owner.uid;
    t.group = job_results(job).owner.gid;
    t.entry = entry;
    t.name = output;
    t.why = why;
    digests.submit(std::move(t));
  }

  // The simulation could not write a checkpoint (vigil_report_checkpoint_failed):
  // the report is on the timeline; the job goes on. Out of space, the job's
  // older verified checkpoints are pruned so the next one has room.
  void checkpoint_failed(const Event& e, std::int64_t now) {
    const int err = e.attrs.value("errno", 0);
    counters.checkpoints_failed++;
    spdlog::warn("job {}: checkpoint {} at step {} could not be written: {}", e.job,
                 e.attrs.value("path", std::string("?")), e.attrs.value("step", std::int64_t{-1}),
                 e.attrs.value("error", std::string("?")));
    if (err == ENOSPC || err == EDQUOT) run_retention(e.job, true, now);
  }

  void pruned(std::uint32_t job, const CheckpointEntry& c, const std::string& why, bool deleted,
              const std::string& error, std::int64_t now) {
    json a = {{"by", "vigild"}, {"path", c.path}, {"sha256", c.sha256}, {"step", c.step},
              {"bytes", c.bytes}, {"reason", why}, {"deleted", deleted}};
    if (!error.empty()) a["error"] = error;
    if (error.empty()) spdlog::info("job {}: checkpoint {} pruned: {}", job, c.path, why);
    else spdlog::warn("job {}: checkpoint {} not deleted: {}", job, c.path, error);
    record(job, EventType::checkpoint_pruned, std::move(a), now);
  }

  // ------------------------------------------------------------------
  // The registry of final outputs (ADR 0013): one record per (job, name)
  // and content. A retried job that writes an output again with the same
  // bytes adds no record; a second copy of it under another path is removed
  // (with the user's identity, as retention does).

  struct Registered {
    std::string path, sha256;
  };
  std::unordered_map<std::uint32_t, std::map<std::string, Registered>> outputs;  // job -> name -> newest

  std::map<std::string, Registered>& outputs_of(std::uint32_t job) {
    auto it = outputs.find(job);
    if (it != outputs.end()) return it->second;
    auto& m = outputs[job];
    if (auto evs = store.events(job, 0, 100000, std::nullopt, EventType::output_registered))
      for (const StoredEvent& s : *evs)
        if (s.event.attrs.value("ok", false))
          m[s.event.attrs.value("name", std::string())] = {s.event.attrs.value("path", std::string()),
                                                           s.event.attrs.value("sha256", std::string())};
    return m;
  }

  void output_add(const Event& e) {
    DigestWorker::Task t;
    t.kind = DigestWorker::Task::Kind::output;
    t.token = next_token++;
    t.job = e.job;
    t.owner = job_results(e.job).owner.uid;
    t.entry.path = e.attrs.value("path", std::string());
    t.entry.step = e.attrs.value("step", std::int64_t{0});
    t.entry.node = e.node;
    t.entry.restart = e.restart;
    t.entry.reported_ns = e.ts_ns;
    t.name = e.attrs.value("name", std::string());
    if (t.name.empty()) t.name = t.entry.path;
    digests.submit(std::move(t));
  }

  void register_output(const DigestWorker::Done& d, std::int64_t now) {
    auto& reg = outputs_of(d.job);
    json a = {{"by", "vigild"}, {"name", d.name},   {"path", d.entry.path}, {"step", d.entry.step},
              {"node", d.entry.node}, {"restart", d.entry.restart}, {"ok", d.error.empty()}};
    if (!d.error.empty()) {
      a["error"] = d.error;
      spdlog::warn("job {}: output {} not registered: {}", d.job, d.name, d.error);
      return record(d.job, EventType::output_registered, std::move(a), now);
    }
    auto it = reg.find(d.name);
    if (it != reg.end() && it->second.sha256 == d.entry.sha256) {
      counters.outputs_duplicate++;
      spdlog::info("job {}: output {} (restart {}) is already registered with the same content", d.job, d.name,
                   d.entry.restart);
      if (d.entry.path != it->second.path) submit_prune(d.job, d.entry, "duplicate of " + it->second.path, d.name);
      return;
    }
    a["sha256"] = d.entry.sha256;
    a["bytes"] = d.entry.bytes;
    if (it != reg.end()) a["supersedes"] = it->second.sha256;  // same name, new content: a real change
    reg[d.name] = {d.entry.path, d.entry.sha256};
    record(d.job, EventType::output_registered, std::move(a), now);
  }

  void reject(const std::string& reason) { counters.rejected[reason]++; }

  void send(const std::string& rid, const std::string& frame) {
    try {
      // ROUTER drops (never blocks on) a frame for a peer that is gone or full.
      sock.send(zmq::buffer(rid), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      sock.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::debug("send to client failed: {}", e.what());
    }
  }

  void send_error(const std::string& rid, std::uint64_t seq, const Error& err) {
    reject(errc_name(err.code));
    send(rid, encode_frame(FrameKind::error, 0, seq, encode_error_body(err.code, err.message), nullptr));
  }

  void on_hello(const std::string& rid, const FrameView& f) {
    auto body = cbor_decode(f.body);
    if (!body || !body->is_object() || !body->contains("cred") || !(*body)["cred"].is_string())
      return send_error(rid, f.header.seq, make_error(Errc::malformed, "hello body must be {cred: string}"));
    auto id = munge.decode((*body)["cred"].get_ref<const std::string&>());
    if (!id) {
      spdlog::warn("hello rejected: {}", id.error().what());
      return send_error(rid, f.header.seq, id.error());
    }
    auto hp = decode_hello_payload(id->payload);
    if (!hp) return send_error(rid, f.header.seq, hp.error());
    if (sessions_per_uid[id->uid] >= cfg.max_sessions_per_uid) expire_oldest(id->uid);
    std::uint64_t sid = 0;
    while (sid == 0 || sessions.count(sid)) random_bytes(&sid, sizeof sid);
    Session s;
    s.key = std::make_unique<HmacKey>(hp->key);
    s.uid = id->uid;
    s.gid = id->gid;
    s.role = hp->role;
    s.admin = is_admin(id->uid, id->gid, cfg.admin_group);
    s.expires_ns = clock() + static_cast<std::int64_t>(cfg.session_ttl_s) * 1'000'000'000;
    const std::string welcome = cbor_encode(json{{"ttl_s", cfg.session_ttl_s}, {"max_body", kMaxBody}});
    send(rid, encode_frame(FrameKind::welcome, sid, f.header.seq, welcome, s.key.get()));
    spdlog::debug("session {:016x} opened: uid={} role={} host={} pid={}", sid, id->uid, hp->role, hp->host, hp->pid);
    sessions.emplace(sid, std::move(s));
    sessions_per_uid[id->uid]++;
    counters.sessions_opened++;
  }

  void expire_oldest(uid_t uid) {
    auto victim = sessions.end();
    for (auto it = sessions.begin(); it != sessions.end(); ++it)
      if (it->second.uid == uid && (victim == sessions.end() || it->second.expires_ns < victim->second.expires_ns))
        victim = it;
    if (victim != sessions.end()) drop_session(victim);
  }

  void drop_session(std::unordered_map<std::uint64_t, Session>::iterator it) {
    if (--sessions_per_uid[it->second.uid] <= 0) sessions_per_uid.erase(it->second.uid);
    sessions.erase(it);
  }

  // Finds the session and checks tag, expiry and sequence; null + error sent on failure.
  Session* authenticate(const std::string& rid, const FrameView& f) {
    auto it = sessions.find(f.header.session);
    if (it == sessions.end()) {
      send_error(rid, f.header.seq, make_error(Errc::unknown_session, "unknown session; send hello again"));
      return nullptr;
    }
    Session& s = it->second;
    if (auto v = verify_frame(f, *s.key); !v) {
      send_error(rid, f.header.seq, v.error());
      return nullptr;
    }
    if (clock() > s.expires_ns) {
      drop_session(it);
      send_error(rid, f.header.seq, make_error(Errc::expired, "session expired; send hello again"));
      return nullptr;
    }
    if (f.header.seq <= s.last_seq) {
      send_error(rid, f.header.seq, make_error(Errc::replayed, "frame sequence " + std::to_string(f.header.seq) +
                                                                   " already seen in this session"));
      return nullptr;
    }
    s.last_seq = f.header.seq;
    return &s;
  }

  // Who may report what: Slurm's own processes (root in slurmstepd) report any
  // job's lifecycle; a user's SDK reports results/checkpoints for that user's
  // own jobs only. docs/adr/0005-authorisation.md.
  std::optional<Error> authorise(const Session& s, const Event& e) {
    if (is_controller_event(e.type))
      return make_error(Errc::denied, std::string("only vigild reports ") + event_type_name(e.type));
    if (s.uid == 0) return std::nullopt;
    if (e.type != EventType::result && e.type != EventType::checkpoint && e.type != EventType::output)
      return make_error(Errc::denied, std::string("only Slurm's processes may report ") + event_type_name(e.type));
    auto owner = store.job_owner(e.job);
    if (!owner) return make_error(Errc::denied, "job " + std::to_string(e.job) + " is unknown to vigild");
    if (*owner != s.uid) return make_error(Errc::denied, "job " + std::to_string(e.job) + " belongs to another user");
    return std::nullopt;
  }

  // Token bucket per session: `rate` events/s, bursts up to 2 s worth.
  bool within_budget(Session& s, std::size_t events) {
    const int rate = cfg.max_events_per_s_per_session;
    if (rate <= 0) return true;
    const std::int64_t now = clock();
    const double cap = 2.0 * rate;
    if (s.tokens < 0) s.tokens = cap;
    else s.tokens = std::min(cap, s.tokens + static_cast<double>(now - s.tokens_ns) / 1e9 * rate);
    s.tokens_ns = now;
    if (s.tokens < static_cast<double>(events)) return false;
    s.tokens -= static_cast<double>(events);
    return true;
  }

  void on_batch(const std::string& rid, const FrameView& f) {
    Session* s = authenticate(rid, f);
    if (!s) return;
    auto batch = decode_batch(f.body);
    if (!batch) return send_error(rid, f.header.seq, batch.error());
    if (!within_budget(*s, batch->events.size() + batch->rejected.size()))
      return send_error(rid, f.header.seq,
                        make_error(Errc::rate_limited, "over " + std::to_string(cfg.max_events_per_s_per_session) +
                                                           " events/s for this session; resend later"));
    if (!in_txn) {
      if (auto b = store.begin(); !b) return send_error(rid, f.header.seq, b.error());
      in_txn = true;
    }
    PendingAck pa{rid, f.header.session, f.header.seq, {}, clock()};
    for (auto& [i, err] : batch->rejected) {
      reject(errc_name(err.code));
      pa.ack.rejected.emplace_back(i, err.what());
    }
    const std::int64_t now = clock();
    std::size_t index = 0;
    for (Event& e : batch->events) {
      while (std::any_of(batch->rejected.begin(), batch->rejected.end(), [&](auto& r) { return r.first == index; }))
        ++index;  // keep indices aligned with the sender's batch
      if (auto denied = authorise(*s, e)) {
        reject(errc_name(denied->code));
        pa.ack.rejected.emplace_back(index++, denied->what());
        continue;
      }
      if (e.type == EventType::result) {
        if (auto bad = normalise_result_attrs(e.attrs); !bad) {
          reject("malformed");
          pa.ack.rejected.emplace_back(index++, bad.error().what());
          continue;
        }
      }
      new_attempt(e);  // before the insert: compares with what the store knew
      auto r = store.insert(e, s->uid, now);
      if (!r) {
        // A store failure (disk full, I/O error) fails the whole group: nobody is
        // acked, everybody resends. Losing nothing beats partial progress.
        spdlog::error("store insert failed: {}", r.error().what());
        abort_group(r.error());
        return send_error(rid, f.header.seq, r.error());
      }
      if (*r == InsertOutcome::stored) {
        pa.ack.stored++;
        track(e, now);
        if (auto in = input_of(e); in && !stale_attempt(e)) lifecycle(e.job, *in, now);
        if (e.type == EventType::job_start) excludes.erase(e.job);  // running again: leave it alone
        if (e.type == EventType::job_end) old_attempt_ended(e, now);
        if (e.type == EventType::result) {
          on_result(e, store.last_insert_seq(), now);
        } else if (e.type == EventType::checkpoint) {
          if (e.attrs.value("failed", false)) {
            checkpoint_failed(e, now);
          } else {
            on_checkpoint(e, now);
            ledger_add(e);
          }
        }
        else if (e.type == EventType::checkpoint_signal) on_signal_delivered(e, now);
        else if (e.type == EventType::output) output_add(e);
      } else {
        pa.ack.duplicates++;
      }
      ++index;
    }
    route_commands(*s, batch->events, pa.ack, now);
    pending.push_back(std::move(pa));
  }

  void abort_group(const Error& err) {
    store.rollback();
    in_txn = false;
    turn_results.clear();  // rolled back: the senders resend them
    for (auto& p : pending) send_error(p.routing_id, p.seq, err);
    pending.clear();
  }

  // Group commit: one transaction for everything drained this turn, then acks.
  void flush() {
    if (!in_txn) return;
    if (auto c = store.commit(); !c) {
      spdlog::error("commit failed: {}", c.error().what());
      abort_group(c.error());
      return;
    }
    in_txn = false;
    counters.commits++;
    // Committed: the dump writer may now show these values to readers.
    for (auto& [job, values] : turn_results) dumps->append(job_results(job).owner, std::move(values));
    turn_results.clear();
    const std::int64_t acked = clock();
    turn_oldest_wait_s = 0;
    for (auto& p : pending) {
      const double wait = static_cast<double>(acked - p.received_ns) / 1e9;
      ack_latency.observe(wait);
      turn_oldest_wait_s = std::max(turn_oldest_wait_s, wait);
      counters.events_stored += p.ack.stored;
      counters.events_duplicate += p.ack.duplicates;
      auto it = sessions.find(p.session);
      if (it == sessions.end()) continue;
      send(p.routing_id, encode_frame(FrameKind::ack, p.session, p.seq, encode_ack(p.ack), it->second.key.get()));
    }
    pending.clear();
  }

  void on_request(const std::string& rid, const FrameView& f) {
    Session* s = authenticate(rid, f);
    if (!s) return;
    flush();  // answer from committed state, including this turn's events
    auto req = cbor_decode(f.body);
    std::string body;
    if (!req || !req->is_object() || !req->contains("op") || !(*req)["op"].is_string()) {
      reject("malformed");
      body = encode_reply_error(Errc::malformed, "request must be {op: string, ...}");
    } else if ((*req)["op"] == "restart_from") {
      return on_restart_from(*s, rid, f, *req);  // answered when its digests are checked
    } else {
      body = answer(*s, *req);
    }
    send(rid, encode_frame(FrameKind::reply, f.header.session, f.header.seq, body, s->key.get()));
  }

  // A user asks the job's running steps to checkpoint now: the plugin on each
  // node sends the job's checkpoint signal to its tasks and reports delivery.
  Result<json> request_checkpoint(const Caller& who, const json& req) {
    if (!req.contains("job") || !req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
      return make_error(Errc::malformed, "checkpoint request needs 'job'");
    const auto job = req["job"].get<std::uint32_t>();
    if (!who.admin && store.job_owner(job) != who.uid)
      return make_error(Errc::denied, "job " + std::to_string(job) + " is not yours");
    auto out = checkpoint_command(job, "request");
    if (out) spdlog::info("job {}: checkpoint requested by uid {} (command {})", job, who.uid, (*out)["command"].dump());
    return out;
  }

  // The job's running steps a checkpoint signal goes to: not the batch shell.
  std::vector<StepKey> signal_targets(std::uint32_t job) const {
    std::vector<StepKey> out;
    for (const StepKey& k : monitor.steps_of(job))
      if (k.step != 0xfffffffbu) out.push_back(k);
    return out;
  }

  static json targets_json(const std::vector<StepKey>& targets) {
    json out = json::array();
    for (const StepKey& k : targets) out.push_back({{"step", k.step}, {"node", k.node}});
    return out;
  }

  // Ask every running step of the job (not the batch shell) to checkpoint: the
  // plugin (or the node's relay) delivers the job's checkpoint signal with `reason`.
  Result<json> checkpoint_command(std::uint32_t job, const std::string& reason) {
    PendingCommand c;
    c.cmd = {next_command_id++, "checkpoint", reason};
    c.job = job;
    c.created_ns = clock();
    c.targets = signal_targets(job);
    if (c.targets.empty())
      return make_error(Errc::unavailable, "job " + std::to_string(job) + " has no running step to signal");
    json out = {{"command", c.cmd.id}, {"targets", targets_json(c.targets)}};
    commands.push_back(std::move(c));
    return out;
  }

  std::string answer(const Session& s, const json& req) {
    const std::string op = req["op"].get<std::string>();
    const int limit = req.contains("limit") && req["limit"].is_number_unsigned()
                          ? static_cast<int>(std::min<std::uint64_t>(req["limit"].get<std::uint64_t>(), 10000))
                          : 1000;
    if (op == "status") {
      // The same numbers /metrics shows, plus who is asking.
      const IntakeSnapshot n = make_snapshot();
      json out = {{"version", "0.1.0"},          {"uptime_s", n.uptime_s},
                  {"events", store.event_count()}, {"sessions", n.sessions},
                  {"watched_steps", n.watched_steps}, {"you", {{"uid", s.uid}, {"admin", s.admin}}},
                  {"rejected", n.rejected}};
      for (const auto& [name, value] : n.counters) out[name] = value;
      return encode_reply_ok(out);
    }
    if (op == "nodes") {
      json arr = json::array();
      const std::int64_t now = clock();
      for (const auto& n : monitor.nodes())
        arr.push_back({{"node", n.node}, {"steps", n.steps}, {"heartbeat_age_s", std::max(0.0, (now - n.last_ns) / 1e9)},
                       {"lost", n.lost}});
      return encode_reply_ok(arr);
    }
    const Caller who{s.uid, s.admin};
    auto reply = [&](Result<json> r) {
      if (!r) {
        if (r.error().code == Errc::denied) reject("denied");
        return encode_reply_error(r.error().code, r.error().message);
      }
      return encode_reply_ok(*r);
    };
    if (op == "jobs") return reply(query_jobs(store, who, limit));
    if (op == "checkpoint") return reply(request_checkpoint(who, req));
    if (op == "stop") return reply(request_stop(who, req));
    if (op == "results") return reply(query_results(who, req, limit));
    if (op == "job" || op == "events") {
      std::optional<std::uint32_t> job;
      if (req.contains("job")) {
        if (!req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
          return encode_reply_error(Errc::malformed, "job must be a 32-bit number");
        job = req["job"].get<std::uint32_t>();
      }
      if (op == "job") {
        if (!job) return encode_reply_error(Errc::malformed, "job request needs 'job'");
        return reply(query_job(store, who, *job, limit));
      }
      const std::int64_t after =
          req.contains("after") && req["after"].is_number_integer() ? req["after"].get<std::int64_t>() : 0;
      return reply(query_events(store, who, job, after, limit));
    }
    return encode_reply_error(Errc::bad_kind, "unknown op '" + op + "'");
  }

  void handle(const std::string& rid, const zmq::message_t& msg) {
    counters.frames++;
    auto f = decode_frame(msg.to_string_view());
    if (!f) return send_error(rid, 0, f.error());
    switch (f->header.kind) {
      case FrameKind::hello: return on_hello(rid, *f);
      case FrameKind::batch: return on_batch(rid, *f);
      case FrameKind::request: return on_request(rid, *f);
      default:
        return send_error(rid, f->header.seq, make_error(Errc::bad_kind, std::string("clients may not send ") +
                                                                               frame_kind_name(f->header.kind)));
    }
  }
};

Intake::Intake(Config cfg, Store& store, Clock clock, SlurmControl* slurm)
    : p_(std::make_unique<Impl>(std::move(cfg), store, std::move(clock), slurm)) {
  p_->sock.set(zmq::sockopt::linger, 0);
  p_->sock.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxFrame));  // oversized: dropped by libzmq
  p_->sock.set(zmq::sockopt::router_mandatory, 0);
  p_->sock.set(zmq::sockopt::sndhwm, 10000);
  p_->sock.set(zmq::sockopt::rcvhwm, 10000);
}

Intake::~Intake() = default;

Result<std::string> Intake::bind() {
  try {
    p_->sock.bind(p_->cfg.listen);
    return p_->sock.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return make_error(Errc::io, "cannot listen on " + p_->cfg.listen + ": " + e.what());
  }
}

void Intake::run(const std::atomic<bool>& stop) {
  if (p_->slurm && p_->cfg.reconcile_interval_s > 0) p_->reconciler = std::thread([this] { p_->reconcile_loop(); });
  // Up to 4096 frames per turn: enough to amortise one fsync over many senders,
  // small enough that a turn stays well under the 50 ms ack budget.
  constexpr int kMaxPerTurn = 4096;
  while (!stop.load(std::memory_order_relaxed)) {
    p_->apply_reload();
    zmq::pollitem_t item{static_cast<void*>(p_->sock), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      int n = 0;
      for (; n < kMaxPerTurn; ++n) {
        zmq::message_t rid, msg;
        if (!p_->sock.recv(rid, zmq::recv_flags::dontwait)) break;
        if (!rid.more()) continue;
        (void)p_->sock.recv(msg, zmq::recv_flags::dontwait);
        if (msg.more()) {  // protocol v1 frames are single-part: drain and reject
          zmq::message_t extra;
          while (p_->sock.recv(extra, zmq::recv_flags::dontwait) && extra.more()) {
          }
          p_->send_error(rid.to_string(), 0, make_error(Errc::malformed, "multi-part message"));
          continue;
        }
        p_->handle(rid.to_string(), msg);
      }
      p_->turn_frames = static_cast<std::uint64_t>(n);
      p_->flush();
      p_->detect();
      p_->apply_reconciliation();
      p_->tick_results();
      p_->tick_checkpoints();
      p_->tick_recovery();
      p_->tick_plan();
      p_->publish();
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::error("intake socket error: {}", e.what());
    }
  }
  p_->flush();
  if (p_->dumps) p_->dumps->drain();  // committed values reach their files before exit
  if (p_->reconciler.joinable()) {
    {
      std::lock_guard<std::mutex> g(p_->recon_mu);
      p_->recon_stop = true;
    }
    p_->recon_cv.notify_all();
    p_->reconciler.join();
  }
}

void Intake::reconfigure(const Config& cfg) {
  std::lock_guard<std::mutex> g(p_->reload_mu);
  p_->next_cfg = cfg;  // applied by the intake thread between turns
}

const IntakeCounters& Intake::counters() const { return p_->counters; }

IntakeSnapshot Intake::snapshot() const {
  std::lock_guard<std::mutex> g(p_->snap_mu);
  return p_->snap;
}

}  // namespace vigil::controller
