// store_fence.cpp — the fence on a job's superseded attempts (schema v9; see
// store.hpp and docs/adr/0022-fencing-superseded-attempts.md): the newest
// attempt vigild gave up on, and the emitter time after which that attempt's
// reports are refused. One row per job (columns of `jobs`), so a restarted
// vigild knows it without reading the timeline.
#include <sqlite3.h>

#include "store.hpp"
#include "store_sql.hpp"

namespace vigil::controller {
using namespace sql;

Status Store::set_fence(std::uint32_t job, const Fence& f) {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "UPDATE jobs SET fence_restart=?2, fence_after_ns=?3, fence_node=?4 WHERE job=?1", -1,
                         &s.s, nullptr) != SQLITE_OK)
    return db_error(db_, "set fence");
  sqlite3_bind_int64(s.s, 1, job);
  sqlite3_bind_int64(s.s, 2, f.restart);
  sqlite3_bind_int64(s.s, 3, f.after_ns);
  sqlite3_bind_text(s.s, 4, f.node.c_str(), -1, SQLITE_STATIC);
  if (sqlite3_step(s.s) != SQLITE_DONE) return db_error(db_, "set fence");
  return ok_status();
}

std::optional<Store::Fence> Store::fence(std::uint32_t job) {
  Stmt s;
  if (sqlite3_prepare_v2(db_,
                         "SELECT fence_restart, fence_after_ns, fence_node FROM jobs WHERE job=?1 AND fence_restart >= 0",
                         -1, &s.s, nullptr) != SQLITE_OK)
    return std::nullopt;
  sqlite3_bind_int64(s.s, 1, job);
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::nullopt;
  return Fence{static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 0)), sqlite3_column_int64(s.s, 1),
               text_col(s.s, 2)};
}

}  // namespace vigil::controller
