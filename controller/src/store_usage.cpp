// store_usage.cpp — the steps and usage tables (schema v3; see store.hpp).
#include <sqlite3.h>

#include "store.hpp"
#include "store_sql.hpp"

namespace vigil::controller {
using namespace sql;

Status Store::put_step(const StepRow& r) {
  if (!put_step_ &&
      sqlite3_prepare_v3(db_,
                         "INSERT OR REPLACE INTO steps(job,step,node,restart,started_ns,last_ns,ended_ns,interval_s,"
                         "heartbeats,max_gap_ms,cpu_s,rss_bytes,silent) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         -1, SQLITE_PREPARE_PERSISTENT, &put_step_, nullptr) != SQLITE_OK)
    return db_error(db_, "put step");
  ResetOnExit s{put_step_};
  sqlite3_bind_int64(s.s, 1, r.job);
  sqlite3_bind_int64(s.s, 2, r.step);
  sqlite3_bind_text(s.s, 3, r.node.c_str(), -1, SQLITE_STATIC);
  sqlite3_bind_int64(s.s, 4, r.restart);
  sqlite3_bind_int64(s.s, 5, r.started_ns);
  sqlite3_bind_int64(s.s, 6, r.last_ns);
  sqlite3_bind_int64(s.s, 7, r.ended_ns);
  sqlite3_bind_int(s.s, 8, r.interval_s);
  sqlite3_bind_int64(s.s, 9, r.heartbeats);
  sqlite3_bind_int64(s.s, 10, r.max_gap_ms);
  sqlite3_bind_double(s.s, 11, r.cpu_s);
  sqlite3_bind_int64(s.s, 12, r.rss_bytes);
  sqlite3_bind_int(s.s, 13, r.silent ? 1 : 0);
  if (sqlite3_step(s.s) != SQLITE_DONE) return db_error(db_, "put step");
  return ok_status();
}

namespace {
constexpr const char* kStepCols =
    "job,step,node,restart,started_ns,last_ns,ended_ns,interval_s,heartbeats,max_gap_ms,cpu_s,rss_bytes,silent";

Store::StepRow step_from(sqlite3_stmt* s) {
  Store::StepRow r;
  r.job = static_cast<std::uint32_t>(sqlite3_column_int64(s, 0));
  r.step = static_cast<std::uint32_t>(sqlite3_column_int64(s, 1));
  r.node = text_col(s, 2);
  r.restart = static_cast<std::uint32_t>(sqlite3_column_int64(s, 3));
  r.started_ns = sqlite3_column_int64(s, 4);
  r.last_ns = sqlite3_column_int64(s, 5);
  r.ended_ns = sqlite3_column_int64(s, 6);
  r.interval_s = sqlite3_column_int(s, 7);
  r.heartbeats = sqlite3_column_int64(s, 8);
  r.max_gap_ms = sqlite3_column_int64(s, 9);
  r.cpu_s = sqlite3_column_double(s, 10);
  r.rss_bytes = sqlite3_column_int64(s, 11);
  r.silent = sqlite3_column_int(s, 12) != 0;
  return r;
}
}  // namespace

Result<std::vector<Store::StepRow>> Store::steps(JobKey job) {
  Stmt s;
  const std::string sql = std::string("SELECT ") + kStepCols + " FROM steps WHERE job=?1 ORDER BY step, node";
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s.s, nullptr) != SQLITE_OK) return db_error(db_, "steps");
  sqlite3_bind_int64(s.s, 1, job);
  std::vector<StepRow> out;
  while (sqlite3_step(s.s) == SQLITE_ROW) out.push_back(step_from(s.s));
  return out;
}

std::optional<Store::StepRow> Store::step_row(std::uint32_t job, std::uint32_t step, const std::string& node) {
  const std::string sql = std::string("SELECT ") + kStepCols + " FROM steps WHERE job=?1 AND step=?2 AND node=?3";
  if (!step_row_ && sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &step_row_, nullptr) != SQLITE_OK)
    return std::nullopt;
  ResetOnExit s{step_row_};  // reset once the row is read: no read transaction left open
  sqlite3_bind_int64(s.s, 1, job);
  sqlite3_bind_int64(s.s, 2, step);
  sqlite3_bind_text(s.s, 3, node.c_str(), -1, SQLITE_STATIC);
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::nullopt;
  return step_from(s.s);
}

// Steps that started on a node and have not ended there (to re-watch after a
// restart); a step already reported silent/lost is not watched again until it
// speaks. Reads the partial index of open steps: no timeline is scanned.
Result<std::vector<Store::OpenStep>> Store::open_steps() {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT job, step, node, interval_s FROM steps WHERE ended_ns = 0 AND silent = 0 AND job < 4294967296", -1,
                         &s.s, nullptr) != SQLITE_OK)
    return db_error(db_, "open steps");
  std::vector<OpenStep> out;
  while (sqlite3_step(s.s) == SQLITE_ROW)
    out.push_back({static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 0)),
                   static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 1)), text_col(s.s, 2),
                   sqlite3_column_int(s.s, 3)});
  return out;
}

Status Store::add_usage(const UsageRow& r) {
  if (!add_usage_ &&
      sqlite3_prepare_v3(db_,
                         "INSERT INTO usage(job,node,bucket_s,width_s,cpu_s,node_s,rss_max,samples)"
                         " VALUES(?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(job,node,width_s,bucket_s) DO UPDATE SET"
                         " cpu_s=cpu_s+?5, node_s=node_s+?6, rss_max=max(rss_max,?7), samples=samples+?8",
                         -1, SQLITE_PREPARE_PERSISTENT, &add_usage_, nullptr) != SQLITE_OK)
    return db_error(db_, "add usage");
  if (!add_job_hour_ &&
      sqlite3_prepare_v3(db_,
                         "INSERT INTO usage_job_hour(job,hour_s,cpu_s,node_s) VALUES(?1,?2,?3,?4)"
                         " ON CONFLICT(job,hour_s) DO UPDATE SET cpu_s=cpu_s+?3, node_s=node_s+?4",
                         -1, SQLITE_PREPARE_PERSISTENT, &add_job_hour_, nullptr) != SQLITE_OK)
    return db_error(db_, "add usage");
  {
    ResetOnExit s{add_usage_};
    sqlite3_bind_int64(s.s, 1, r.job);
    sqlite3_bind_text(s.s, 2, r.node.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s.s, 3, r.bucket_s);
    sqlite3_bind_int64(s.s, 4, r.width_s);
    sqlite3_bind_double(s.s, 5, r.cpu_s);
    sqlite3_bind_double(s.s, 6, r.node_s);
    sqlite3_bind_int64(s.s, 7, r.rss_max);
    sqlite3_bind_int64(s.s, 8, r.samples);
    if (sqlite3_step(s.s) != SQLITE_DONE) return db_error(db_, "add usage");
  }
  ResetOnExit h{add_job_hour_};
  sqlite3_bind_int64(h.s, 1, r.job);
  sqlite3_bind_int64(h.s, 2, r.bucket_s - r.bucket_s % 3600);
  sqlite3_bind_double(h.s, 3, r.cpu_s);
  sqlite3_bind_double(h.s, 4, r.node_s);
  if (sqlite3_step(h.s) != SQLITE_DONE) return db_error(db_, "add usage");
  return ok_status();
}

// Whole hours read the per-job hourly rows (a month of an account: its jobs
// through jobs_by_account, then ~720 rows each); finer intervals read the
// per-node minute rows (kept usage_minute_days).
std::string Store::usage_sql(const UsageFilter& f, bool hours) {
  std::string sql =
      hours ? "SELECT (u.hour_s / ?3) * ?3 AS t, sum(u.cpu_s) / 3600.0, sum(u.node_s) / 3600.0"
              " FROM usage_job_hour u JOIN jobs j ON j.job = u.job WHERE u.hour_s >= ?1 AND u.hour_s < ?2"
            : "SELECT (u.bucket_s / ?3) * ?3 AS t, sum(u.cpu_s) / 3600.0, sum(u.node_s) / 3600.0"
              " FROM usage u JOIN jobs j ON j.job = u.job WHERE u.bucket_s >= ?1 AND u.bucket_s < ?2";
  if (f.account) sql += " AND j.account = ?4";
  if (f.user) sql += " AND j.user = ?5";
  if (f.study) sql += " AND j.study = ?6";
  if (f.job) sql += " AND u.job = ?7";
  sql += " GROUP BY t ORDER BY t";
  return sql;
}

Result<std::vector<Store::UsagePoint>> Store::usage(const UsageFilter& f, std::int64_t t1, std::int64_t t2,
                                                    std::int64_t width_s) {
  if (width_s <= 0) return make_error(Errc::malformed, "usage interval must be positive");
  const bool hours = width_s % 3600 == 0;
  const std::string sql = usage_sql(f, hours);
  Stmt s;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s.s, nullptr) != SQLITE_OK) return db_error(db_, "usage");
  sqlite3_bind_int64(s.s, 1, hours ? t1 - t1 % 3600 : t1);
  sqlite3_bind_int64(s.s, 2, t2);
  sqlite3_bind_int64(s.s, 3, width_s);
  if (f.account) sqlite3_bind_text(s.s, 4, f.account->c_str(), -1, SQLITE_STATIC);
  if (f.user) sqlite3_bind_text(s.s, 5, f.user->c_str(), -1, SQLITE_STATIC);
  if (f.study) sqlite3_bind_text(s.s, 6, f.study->c_str(), -1, SQLITE_STATIC);
  if (f.job) sqlite3_bind_int64(s.s, 7, *f.job);
  std::vector<UsagePoint> out;
  while (sqlite3_step(s.s) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(s.s, 0), sqlite3_column_double(s.s, 1), sqlite3_column_double(s.s, 2)});
  return out;
}

Result<std::int64_t> Store::compact_usage(std::int64_t before_s, std::int64_t from_s) {
  // Hour rows absorb the minute rows of their hour (same job and node); the
  // minute rows go. One statement each, inside the caller's transaction.
  const std::string b = std::to_string(before_s - before_s % 3600);
  const std::string range = " bucket_s >= " + std::to_string(from_s - from_s % 3600) + " AND bucket_s < " + b;
  const std::string fold =
      "INSERT INTO usage(job,node,bucket_s,width_s,cpu_s,node_s,rss_max,samples)"
      " SELECT job, node, (bucket_s/3600)*3600, 3600, sum(cpu_s), sum(node_s), max(rss_max), sum(samples)"
      " FROM usage WHERE width_s < 3600 AND" + range + " GROUP BY job, node, (bucket_s/3600)*3600"
      " ON CONFLICT(job,node,width_s,bucket_s) DO UPDATE SET cpu_s=cpu_s+excluded.cpu_s, node_s=node_s+excluded.node_s,"
      " rss_max=max(rss_max,excluded.rss_max), samples=samples+excluded.samples";
  if (auto s = exec(db_, fold.c_str()); !s) return s.error();
  const std::string drop = "DELETE FROM usage WHERE width_s < 3600 AND" + range;
  if (auto s = exec(db_, drop.c_str()); !s) return s.error();
  return static_cast<std::int64_t>(sqlite3_changes(db_));
}

Status Store::set_account(std::uint32_t job, const std::string& account) {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "UPDATE jobs SET account=?2 WHERE job=?1 AND account IS NOT ?2", -1, &s.s, nullptr) !=
      SQLITE_OK)
    return db_error(db_, "set account");
  sqlite3_bind_int64(s.s, 1, job);
  sqlite3_bind_text(s.s, 2, account.c_str(), -1, SQLITE_STATIC);
  if (sqlite3_step(s.s) != SQLITE_DONE) return db_error(db_, "set account");
  return ok_status();
}

}  // namespace vigil::controller
