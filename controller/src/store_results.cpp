// store_results.cpp — result values and their dumps: which dumps to rebuild,
// values leaving the store once their dump holds them, replay ids (schema v6;
// see store.hpp and docs/adr/0018-results-leave-the-store.md).
#include <sqlite3.h>

#include "store.hpp"
#include "store_sql.hpp"

namespace vigil::controller {
using namespace sql;

// Reads the jobs table only (result_seq is kept by insert()); the newest
// `results_final` of each candidate is one lookup in events_by_job_type.
Result<std::vector<std::pair<std::uint32_t, bool>>> Store::jobs_needing_dump() {
  Stmt s;
  if (sqlite3_prepare_v2(
          db_,
          "SELECT job, final FROM (SELECT j.job AS job,"
          " j.state IN ('COMPLETED','FAILED','CANCELLED','STOPPED') AS final, j.result_seq AS last_result,"
          " (SELECT max(seq) FROM events e WHERE e.job=j.job AND e.type=16 AND e.type NOT IN (4,5,9,10,11,21)"
          ") AS last_final FROM jobs j"
          " WHERE j.job < 4294967296 AND j.result_seq > 0)"  // current jobs: an archived job's dump was finalised
          " WHERE NOT final OR last_final IS NULL OR last_final < last_result",
          -1, &s.s, nullptr) != SQLITE_OK)
    return db_error(db_, "jobs needing a dump");
  std::vector<std::pair<std::uint32_t, bool>> out;
  while (sqlite3_step(s.s) == SQLITE_ROW)
    out.emplace_back(static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 0)), sqlite3_column_int(s.s, 1) != 0);
  return out;
}

// The range [from, upto] is walked on the primary key: the job's results
// since its previous mark and whatever else arrived meanwhile, never the
// whole timeline. A mark for an earlier incarnation of the id (Slurm reused
// it since) applies to that job's archived key, where its rows have moved.
Result<std::int64_t> Store::mark_dumped(const DumpMark& m) {
  Stmt cur;
  if (sqlite3_prepare_v2(db_, "SELECT incarnation FROM jobs WHERE job=?1", -1, &cur.s, nullptr) != SQLITE_OK)
    return db_error(db_, "mark dumped");
  sqlite3_bind_int64(cur.s, 1, m.job);
  if (sqlite3_step(cur.s) != SQLITE_ROW) return 0;
  const auto current = static_cast<std::uint32_t>(sqlite3_column_int64(cur.s, 0));
  if (m.incarnation > current) return 0;  // not a job this store knows
  const JobKey key = m.incarnation == current ? JobKey{m.job} : archived_key(m.job, m.incarnation);
  Stmt drop;
  if (sqlite3_prepare_v2(db_,
                         "UPDATE events SET attrs=NULL WHERE seq BETWEEN ?1 AND ?2 AND job=?3 AND type=10"
                         " AND attrs IS NOT NULL",
                         -1, &drop.s, nullptr) != SQLITE_OK)
    return db_error(db_, "drop dumped values");
  sqlite3_bind_int64(drop.s, 1, m.from_seq);
  sqlite3_bind_int64(drop.s, 2, m.upto_seq);
  sqlite3_bind_int64(drop.s, 3, static_cast<std::int64_t>(key));
  if (sqlite3_step(drop.s) != SQLITE_DONE) return db_error(db_, "drop dumped values");
  const std::int64_t dropped = sqlite3_changes(db_);
  Stmt up;
  if (sqlite3_prepare_v2(db_, "UPDATE jobs SET dump_seq=max(dump_seq,?2) WHERE job=?1", -1, &up.s, nullptr) !=
      SQLITE_OK)
    return db_error(db_, "record dump mark");
  sqlite3_bind_int64(up.s, 1, static_cast<std::int64_t>(key));
  sqlite3_bind_int64(up.s, 2, m.upto_seq);
  if (sqlite3_step(up.s) != SQLITE_DONE) return db_error(db_, "record dump mark");
  return dropped;
}

std::int64_t Store::dump_seq(std::uint32_t job) {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT dump_seq FROM jobs WHERE job=?1", -1, &s.s, nullptr) != SQLITE_OK) return 0;
  sqlite3_bind_int64(s.s, 1, job);
  return sqlite3_step(s.s) == SQLITE_ROW ? sqlite3_column_int64(s.s, 0) : 0;
}

std::int64_t Store::max_seq() {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT coalesce(max(seq),0) FROM events", -1, &s.s, nullptr) != SQLITE_OK) return 0;
  return sqlite3_step(s.s) == SQLITE_ROW ? sqlite3_column_int64(s.s, 0) : 0;
}

// Where the previous call stopped is kept in meta, so each call walks only
// the rows stored since.
Result<std::int64_t> Store::fold_checkpoint(JobKey job, std::int64_t report_seq, std::int64_t verified_seq) {
  Stmt del;
  if (sqlite3_prepare_v2(db_, "DELETE FROM events WHERE seq IN (?1, ?2) AND job=?3 AND type IN (11, 18)", -1, &del.s,
                         nullptr) != SQLITE_OK)
    return db_error(db_, "fold a pruned checkpoint");
  sqlite3_bind_int64(del.s, 1, report_seq);
  sqlite3_bind_int64(del.s, 2, verified_seq);
  sqlite3_bind_int64(del.s, 3, static_cast<std::int64_t>(job));
  if (sqlite3_step(del.s) != SQLITE_DONE) return db_error(db_, "fold a pruned checkpoint");
  const std::int64_t n = sqlite3_changes(db_);  // jobs.events still counts them: events received
  return n;
}

Result<std::int64_t> Store::drop_replay_ids(std::int64_t upto_seq) {
  std::int64_t from = 0;
  {
    Stmt s;
    if (sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key='replay_ids_from'", -1, &s.s, nullptr) == SQLITE_OK &&
        sqlite3_step(s.s) == SQLITE_ROW)
      from = sqlite3_column_int64(s.s, 0);
  }
  if (upto_seq < from) return 0;
  Stmt del;
  if (sqlite3_prepare_v2(db_, "DELETE FROM events WHERE seq BETWEEN ?1 AND ?2 AND type=10 AND attrs IS NULL", -1,
                         &del.s, nullptr) != SQLITE_OK)
    return db_error(db_, "drop replay ids");
  sqlite3_bind_int64(del.s, 1, from);
  sqlite3_bind_int64(del.s, 2, upto_seq);
  if (sqlite3_step(del.s) != SQLITE_DONE) return db_error(db_, "drop replay ids");
  const std::int64_t n = sqlite3_changes(db_);
  Stmt mark;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO meta VALUES('replay_ids_from', ?1)", -1, &mark.s, nullptr) !=
          SQLITE_OK ||
      (sqlite3_bind_int64(mark.s, 1, upto_seq + 1), sqlite3_step(mark.s) != SQLITE_DONE))
    return db_error(db_, "record replay ids mark");
  return n;
}

}  // namespace vigil::controller
