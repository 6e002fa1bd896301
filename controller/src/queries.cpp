// queries.cpp — see queries.hpp.
#include "queries.hpp"

#include <grp.h>
#include <pwd.h>

#include <algorithm>

namespace vigil::controller {

bool is_admin(uid_t uid, gid_t gid, const std::string& admin_group) {
  if (uid == 0) return true;
  struct group* g = getgrnam(admin_group.c_str());
  if (g == nullptr) return false;
  if (g->gr_gid == gid) return true;
  struct passwd* pw = getpwuid(uid);
  if (pw == nullptr) return false;
  for (char** m = g->gr_mem; m && *m; ++m)
    if (std::string(*m) == pw->pw_name) return true;
  return false;
}

json event_json(const StoredEvent& s) {
  const Event& e = s.event;
  json j = {{"seq", s.seq},       {"id", event_id_hex(e.id)}, {"type", event_type_name(e.type)},
            {"ts_ns", e.ts_ns},   {"job", e.job},             {"restart", e.restart},
            {"sender_uid", s.sender_uid}, {"attrs", e.attrs}};
  if (e.step != kNoStep) j["step"] = e.step;
  if (e.task >= 0) j["task"] = e.task;
  if (!e.node.empty()) j["node"] = e.node;
  return j;
}

json job_json(const JobRow& r) {
  const std::int64_t uid = r.uid == static_cast<uid_t>(-1) ? -1 : static_cast<std::int64_t>(r.uid);
  // job: the Slurm id; key: the name that reaches this very job, even after
  // Slurm gave the id to another (ADR 0017).
  return {{"job", slurm_id_of(r.job)},
          {"key", job_key_name(r.job, r.incarnation)},
          {"incarnation", r.incarnation},
          {"current", !is_archived(r.job)},
          {"submit_s", r.submit_s},
          {"results_in_dump_upto", r.dump_seq},
          {"timeline_forgotten_ns", r.timeline_forgotten_ns},
          {"uid", uid},
          {"user", r.user},
          {"state", r.state},
          {"first_ns", r.first_ns},
          {"last_ns", r.last_ns},
          {"events", r.events},
          {"label", r.label},
          {"restart", r.restart},
          {"slurm_state", r.slurm_state}};
}

namespace {
Status may_see(Store& store, const Caller& who, JobKey job) {
  if (who.admin) return ok_status();
  if (store.job_owner(job) == who.uid) return ok_status();
  return make_error(Errc::denied, "job " + std::to_string(slurm_id_of(job)) + " is not yours");
}
}  // namespace

Result<json> query_jobs(Store& store, const Caller& who, int limit) {
  auto rows = store.jobs(who.only(), limit);
  if (!rows) return rows.error();
  json arr = json::array();
  for (auto& r : *rows) arr.push_back(job_json(r));
  return arr;
}

Result<json> query_events(Store& store, const Caller& who, std::optional<JobKey> job, std::int64_t after,
                          int limit) {
  if (job)
    if (auto s = may_see(store, who, *job); !s) return s.error();
  auto evs = store.events(job, after, limit, who.only());
  if (!evs) return evs.error();
  json arr = json::array();
  for (auto& e : *evs) arr.push_back(event_json(e));
  return arr;
}

Result<json> query_job(Store& store, const Caller& who, JobKey job, int limit) {
  if (auto s = may_see(store, who, job); !s) return s.error();
  auto row = store.job_row(job);
  if (!row) return make_error(Errc::denied, "job " + std::to_string(slurm_id_of(job)) + " is unknown");
  json info = job_json(*row);
  // Result values are many and have their own view (`vigil tail`, the HDF5
  // dump): the timeline counts them instead of listing them. A job of months
  // shows its newest `limit` events (`vigil events --job` pages from the start).
  auto evs = store.events(job, 0, limit, who.only(), EventType::result, true, true);
  if (!evs) return evs.error();
  // In the order things happened, not the order vigild heard of them: the
  // submit event comes from slurmctld's view after the nodes reported starts.
  std::stable_sort(evs->begin(), evs->end(),
                   [](const StoredEvent& a, const StoredEvent& b) { return a.event.ts_ns < b.event.ts_ns; });
  json timeline = json::array();
  for (auto& e : *evs) timeline.push_back(event_json(e));
  info["timeline"] = std::move(timeline);
  info["results"] = row->results;
  info["timeline_complete"] = static_cast<std::int64_t>(evs->size()) < limit;
  json tr = json::array();
  if (auto trs = store.transitions(job))
    for (const auto& t : *trs) tr.push_back({{"from", t.from}, {"to", t.to}, {"reason", t.reason}, {"ts_ns", t.ts_ns}});
  info["transitions"] = tr;
  // Liveness per step and node (heartbeats are not timeline rows: ADR 0016).
  json steps = json::array();
  if (auto rows = store.steps(job))
    for (const auto& r : *rows)
      steps.push_back({{"step", r.step}, {"node", r.node}, {"restart", r.restart}, {"started_ns", r.started_ns},
                       {"last_ns", r.last_ns}, {"ended_ns", r.ended_ns}, {"interval_s", r.interval_s},
                       {"heartbeats", r.heartbeats}, {"max_gap_ms", r.max_gap_ms}, {"cpu_s", r.cpu_s},
                       {"rss_bytes", r.rss_bytes}, {"silent", r.silent}});
  info["steps"] = std::move(steps);
  return info;
}

}  // namespace vigil::controller
