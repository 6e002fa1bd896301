// store_retention.cpp — finished jobs' timelines leave the store (schema v8;
// see store.hpp and docs/adr/0020-timeline-retention.md). The job row, its
// transitions and its usage stay: accounting and `vigil show` still have them.
#include <sqlite3.h>

#include "store.hpp"
#include "store_sql.hpp"

namespace vigil::controller {
using namespace sql;

Result<std::vector<JobKey>> Store::jobs_to_forget(std::int64_t ended_before_ns, int limit) {
  // Ended: a final state, or an earlier job archived under a reused id (its
  // key is above 2^32). Results still only in the store (a dump that never
  // finished) keep the job back: nothing unrecorded is deleted.
  Stmt s;
  if (sqlite3_prepare_v2(db_,
                         "SELECT job FROM jobs WHERE timeline_forgotten_ns = 0 AND last_ns < ?1"
                         " AND (state IN ('COMPLETED','FAILED','CANCELLED','STOPPED') OR job > 4294967295)"
                         " AND dump_seq >= result_seq ORDER BY last_ns LIMIT ?2",
                         -1, &s.s, nullptr) != SQLITE_OK)
    return db_error(db_, "jobs to forget");
  sqlite3_bind_int64(s.s, 1, ended_before_ns);
  sqlite3_bind_int(s.s, 2, limit);
  std::vector<JobKey> out;
  int rc;
  while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) out.push_back(static_cast<JobKey>(sqlite3_column_int64(s.s, 0)));
  if (rc != SQLITE_DONE) return db_error(db_, "jobs to forget");
  return out;
}

Result<std::int64_t> Store::forget_timeline(JobKey job, std::int64_t now_ns, int max_rows, bool& done) {
  done = false;
  Stmt del;
  if (sqlite3_prepare_v2(db_, "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE job=?1 LIMIT ?2)", -1,
                         &del.s, nullptr) != SQLITE_OK)
    return db_error(db_, "forget a timeline");
  sqlite3_bind_int64(del.s, 1, static_cast<std::int64_t>(job));
  sqlite3_bind_int(del.s, 2, max_rows);
  if (sqlite3_step(del.s) != SQLITE_DONE) return db_error(db_, "forget a timeline");
  const std::int64_t n = sqlite3_changes(db_);
  if (n >= max_rows) return n;  // more next time
  for (const char* sql : {"DELETE FROM steps WHERE job=?1", "UPDATE jobs SET timeline_forgotten_ns=?2 WHERE job=?1"}) {
    Stmt s;
    if (sqlite3_prepare_v2(db_, sql, -1, &s.s, nullptr) != SQLITE_OK) return db_error(db_, "forget a timeline");
    sqlite3_bind_int64(s.s, 1, static_cast<std::int64_t>(job));
    sqlite3_bind_int64(s.s, 2, now_ns);
    if (sqlite3_step(s.s) != SQLITE_DONE) return db_error(db_, "forget a timeline");
  }
  done = true;
  return n;
}

}  // namespace vigil::controller
