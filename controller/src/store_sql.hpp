// store_sql.hpp — small SQLite helpers shared by the store's source files
// (store.cpp, store_schema.cpp, store_usage.cpp, ...). Private to the store.
#pragma once

#include <sqlite3.h>

#include <string>

#include "vigil/result.hpp"

// The event types decisions never look up by (job, type), and that come in
// numbers: per task (task_start, task_exit, checkpoint_signal) and from the
// SDK (result, checkpoint, output). The (job, type, seq) index leaves them out
// (schema v5); a query that wants the index for another type repeats this
// term word for word (SQLite uses a partial index only when the query's WHERE
// contains its condition). docs/research/ingest-bench.md has why.
// Since schema v8 the condition is a chain of <>, not NOT IN (...): SQLite
// evaluates a partial index's condition on every insert, and for an IN list it
// builds and drops a temporary B-tree each time (OpenEphemeral; measured: most
// of the ingest regression against the code before schema v3).
#define VIGIL_UNINDEXED_TYPES "type<>4 AND type<>5 AND type<>9 AND type<>10 AND type<>11 AND type<>21"

namespace vigil::controller::sql {

// The schema's migrations, in order (store_schema.cpp): kMigrations[N - 1]
// brings a database from version N - 1 to N.
extern const char* const kMigrations[];
extern const int kMigrationCount;

inline Error db_error(sqlite3* db, const std::string& what) {
  return make_error(Errc::io, what + ": " + sqlite3_errmsg(db));
}

inline Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown";
    sqlite3_free(err);
    return make_error(Errc::io, std::string("sqlite: ") + m);
  }
  return ok_status();
}

// Statements kept prepared (Store::Stmts) must be reset as soon as their row
// is read: a SELECT left stepped holds its connection's read transaction, and
// with it a WAL snapshot, open. No checkpoint can copy frames newer than that
// snapshot, so the WAL (and its shared-memory index, mapped into vigild) grows
// for as long as the statement waits, which for the writer's job_state() was
// until the next lifecycle event: the RSS growth of the 10-minute soak
// (docs/research/ingest-bench.md). Statements used once are finalized.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

// A statement kept prepared (SQLITE_PREPARE_PERSISTENT), reset when the
// scope that used it ends, whatever path it leaves by (see Stmt).
struct ResetOnExit {
  sqlite3_stmt* s;
  ~ResetOnExit() { sqlite3_reset(s); }
};

inline std::string text_col(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

}  // namespace vigil::controller::sql
