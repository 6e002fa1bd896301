// reconcile.cpp — see reconcile.hpp.
#include "reconcile.hpp"

#include <pwd.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace vigil::controller {

ReconcileModule::ReconcileModule(Core& core) : core_(core) {
  core_.host.on_tick([this](std::int64_t now) { apply(now); });
}

// Wake the thread for a round of its own; `then` runs after the round that
// starts after this call is applied (a round already under way may predate
// the job asked about). Unless `force`, a round begun less than kFresh ago
// and applied will do.
void ReconcileModule::refresh(std::function<void()> then, bool force) {
  std::uint64_t need = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    // A round that started less than kFresh ago and is applied already is
    // fresh enough: many clients polling cost slurmctld one RPC per kFresh.
    if (force || fetching_ || applied_ != rounds_ || SteadyClock::now() - round_started_ >= kFresh) {
      need = rounds_ + (fetching_ ? 2 : 1);
      wake_ = true;
    }
  }
  if (need == 0) return then();
  cv_.notify_all();
  waiting_.emplace_back(need, std::move(then));
}

ReconcileModule::~ReconcileModule() { stop(); }

void ReconcileModule::start() {
  if (core_.slurm && core_.cfg.reconcile_interval_s > 0 && !thread_.joinable()) {
    thread_ = std::thread([this] { loop(); });
    core_.set_refresher([this](std::function<void()> then, bool force) { refresh(std::move(then), force); });
  }
}

void ReconcileModule::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ReconcileModule::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    wake_ = false;
    fetching_ = true;
    round_started_ = SteadyClock::now();
    const std::time_t since = since_;
    lk.unlock();
    auto r = core_.slurm->load_jobs(since);
    lk.lock();
    if (!r) {
      core_.counters.reconcile_errors++;
      spdlog::warn("reconciliation: {}", r.error().message);
    } else {
      core_.counters.reconcile_rounds++;
      if (r->changed) {
        // Each changed answer is the whole table: its running jobs are the view
        // the checkpoint strategies work from.
        fetched_.running.clear();
        for (const SlurmJob& j : r->jobs)
          if (j.state == "RUNNING") fetched_.running.push_back(j);
        fetched_new_ = true;
        for (auto& j : r->jobs) pending_.push_back(std::move(j));
        since_ = r->last_update;
      }
    }
    if (core_.cfg.checkpoint_before_maintenance_s > 0) {
      lk.unlock();
      auto resv = core_.slurm->load_reservations();
      lk.lock();
      if (resv) {
        fetched_.reservations = std::move(*resv);
        fetched_new_ = true;
      } else {
        spdlog::warn("reservations: {}", resv.error().message);
      }
    }
    rounds_++;
    fetching_ = false;
    cv_.wait_for(lk, std::chrono::seconds(core_.cfg.reconcile_interval_s), [&] { return stop_ || wake_; });
  }
}

// The job's `submit` event, from what slurmctld says was requested. Its id is
// derived from (submit time, job id), so every reconciliation round and every
// restart finds the same event and stores it once.
void ReconcileModule::record_submit(const SlurmJob& j, std::int64_t now) {
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
  auto r = core_.store.insert(e, 0, now);
  if (!r) return (void)spdlog::error("reconciliation: submit event: {}", r.error().what());
  if (*r == InsertOutcome::stored) core_.dispatch(e, core_.store.last_insert_seq(), now);
}

// The recovery policy ended this job (budget spent): Slurm's later view
// (CANCELLED, a requeue by a DOWN node) does not change its FAILED.
bool ReconcileModule::failed_by_policy(std::uint32_t job) {
  auto st = core_.store.job_state(job);
  if (!st || st->first != "FAILED") return false;
  auto e = core_.store.latest(job, EventType::recovery);
  return e && e->event.attrs.value("action", std::string()) == "fail";
}

// Slurm ended an attempt recovery has already decided to retry (the requeue
// killed it, or its superseded predecessor's srun did, ADR 0022): that end is
// stale, as the attempt's own job_end is (lifecycle_module), unless the
// requeue could not be carried out.
bool ReconcileModule::being_retried(std::uint32_t job, std::uint32_t slurm_restart) {
  auto d = core_.decided.find(job);
  if (d == core_.decided.end() || slurm_restart > d->second) return false;
  auto st = core_.store.job_state(job);
  if (!st || st->first != "RECOVERING") return false;
  auto e = core_.store.latest(job, EventType::recovery);
  return !e || e->event.attrs.value("action", std::string()) != "requeue_failed";
}

void ReconcileModule::apply(std::int64_t now) {
  std::vector<SlurmJob> jobs;
  std::uint64_t round;
  {
    std::lock_guard<std::mutex> g(mu_);
    jobs.swap(pending_);
    round = rounds_;
    applied_ = rounds_;
    if (fetched_new_) {
      core_.view = fetched_;
      fetched_new_ = false;
    }
  }
  if (!jobs.empty()) apply_jobs(jobs, now);
  // Requests waiting for a fresh view, now applied (reply() may add more).
  if (!waiting_.empty()) {
    std::vector<std::function<void()>> due;
    std::erase_if(waiting_, [&](auto& w) {
      if (w.first > round) return false;
      due.push_back(std::move(w.second));
      return true;
    });
    for (auto& f : due) f();
  }
}

void ReconcileModule::apply_jobs(const std::vector<SlurmJob>& jobs, std::int64_t now) {
  using K = LifecycleInput::Kind;
  core_.transaction("reconciliation", [&] {
    for (const SlurmJob& j : jobs) {
      // A different job under an id vigild knows (ADR 0017): the old one is
      // archived before anything of the new one is applied.
      if (auto known = core_.store.known_job(j.job);
          known && slurm_reports_new_job(*known, static_cast<std::int64_t>(j.submit_time), j.restart, j.state))
        core_.retire(j.job,
                     "slurmctld lists job " + std::to_string(j.job) + " " + j.state + " at restart " +
                         std::to_string(j.restart) + ", submitted at " + std::to_string(j.submit_time) +
                         "; the job vigild knew was " + known->slurm_state + " at restart " +
                         std::to_string(known->restart) + ", submitted at " + std::to_string(known->submit_s) +
                         ": a new job under this id",
                     now);
      record_submit(j, now);
      if (failed_by_policy(j.job)) continue;  // Vigil's verdict, with its reason, stands
      core_.store.ensure_job(j.job, now);
      std::string user;
      if (struct passwd* pw = getpwuid(j.uid)) user = pw->pw_name;
      core_.store.set_owner(j.job, j.uid, user);  // slurmctld is authoritative on ownership
      if (!j.account.empty()) core_.store.set_account(j.job, j.account);
      const auto cur = core_.store.job_state(j.job);
      if (cur && j.restart > cur->second)
        core_.lifecycle(j.job, {K::requeued, "restart " + std::to_string(j.restart), true}, now);
      core_.store.record_slurm_view(j.job, j.state, j.restart, static_cast<std::int64_t>(j.submit_time));
      const std::string why = "slurmctld: " + j.state;
      const bool ending = j.state != "PENDING" && j.state != "RUNNING" && j.state != "SUSPENDED" && j.state != "UNKNOWN";
      if (ending && being_retried(j.job, j.restart)) continue;
      if (j.state == "PENDING") core_.lifecycle(j.job, {K::slurm_pending, why, true}, now);
      else if (j.state == "RUNNING") core_.lifecycle(j.job, {K::slurm_running, why, true}, now);
      else if (j.state == "COMPLETED") core_.lifecycle(j.job, {K::ended_ok, why, true}, now);
      else if (j.state == "CANCELLED" || j.state == "PREEMPTED") core_.lifecycle(j.job, {K::cancelled, why, true}, now);
      else if (j.state != "SUSPENDED" && j.state != "UNKNOWN") core_.lifecycle(j.job, {K::ended_failed, why, true}, now);
    }
    return true;
  });
  // Outside the transaction: reactions that call Slurm (recovery on NODE_FAIL).
  core_.host.slurm_view(jobs, now);
}

}  // namespace vigil::controller
