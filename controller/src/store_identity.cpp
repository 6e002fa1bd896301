// store_identity.cpp — job keys: what is known under an id, archiving an
// earlier job when Slurm reuses its id, resolving "1234.2" (schema v4; see
// store.hpp and docs/adr/0017-job-identity.md).
#include <sqlite3.h>

#include "store.hpp"
#include "store_sql.hpp"

namespace vigil::controller {
using namespace sql;

std::optional<KnownJob> Store::known_job(std::uint32_t job) {
  Stmt s;
  if (sqlite3_prepare_v2(db_,
                         "SELECT submit_s, restart, incarnation, state, coalesce(slurm_state,''),"
                         " (SELECT max(ts_ns) FROM transitions t WHERE t.job=?1) FROM jobs WHERE job=?1",
                         -1, &s.s, nullptr) != SQLITE_OK)
    return std::nullopt;
  sqlite3_bind_int64(s.s, 1, job);
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::nullopt;
  KnownJob k;
  k.submit_s = sqlite3_column_int64(s.s, 0);
  k.restart = static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 1));
  k.incarnation = static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 2));
  const std::string state = text_col(s.s, 3);
  k.terminal = state == "COMPLETED" || state == "FAILED" || state == "CANCELLED" || state == "STOPPED";
  k.slurm_state = text_col(s.s, 4);
  if (k.terminal) k.ended_ns = sqlite3_column_int64(s.s, 5);
  return k;
}

bool Store::has_event(const EventId& id) {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT 1 FROM events WHERE id=?1", -1, &s.s, nullptr) != SQLITE_OK) return false;
  sqlite3_bind_blob(s.s, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
  return sqlite3_step(s.s) == SQLITE_ROW;
}

// Every table with a job column moves the old job's rows to its archived key,
// then the id gets a fresh row for the next incarnation. Each UPDATE walks the
// old job's index range once: a one-off cost when Slurm reuses an id, never on
// a decision path.
Result<JobKey> Store::retire(std::uint32_t job, std::int64_t now_ns) {
  if (auto f = flush_job_touches(); !f) return f.error();
  auto known = known_job(job);
  if (!known) return make_error(Errc::denied, "job " + std::to_string(job) + " is unknown");
  const JobKey key = archived_key(job, known->incarnation);
  for (const char* table : {"events", "transitions", "steps", "usage", "usage_job_hour", "jobs"}) {
    Stmt s;
    const std::string sql = std::string("UPDATE ") + table + " SET job=?2 WHERE job=?1";
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s.s, nullptr) != SQLITE_OK) return db_error(db_, "retire job");
    sqlite3_bind_int64(s.s, 1, job);
    sqlite3_bind_int64(s.s, 2, static_cast<std::int64_t>(key));
    if (sqlite3_step(s.s) != SQLITE_DONE) return db_error(db_, std::string("retire job: ") + table);
  }
  Stmt ins;
  if (sqlite3_prepare_v2(db_, "INSERT INTO jobs(job,first_ns,last_ns,events,incarnation) VALUES(?1,?2,?2,0,?3)", -1,
                         &ins.s, nullptr) != SQLITE_OK)
    return db_error(db_, "retire job");
  sqlite3_bind_int64(ins.s, 1, job);
  sqlite3_bind_int64(ins.s, 2, now_ns);
  sqlite3_bind_int64(ins.s, 3, known->incarnation + 1);
  if (sqlite3_step(ins.s) != SQLITE_DONE) return db_error(db_, "retire job: new row");
  return key;
}

std::optional<JobKey> Store::resolve(const JobRef& ref) {
  auto cur = known_job(ref.job);
  if (!ref.incarnation || (cur && cur->incarnation == *ref.incarnation)) {
    if (!cur) return std::nullopt;
    return JobKey{ref.job};
  }
  const JobKey key = archived_key(ref.job, *ref.incarnation);
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT 1 FROM jobs WHERE job=?1", -1, &s.s, nullptr) != SQLITE_OK) return std::nullopt;
  sqlite3_bind_int64(s.s, 1, static_cast<std::int64_t>(key));
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::nullopt;
  return key;
}

}  // namespace vigil::controller
