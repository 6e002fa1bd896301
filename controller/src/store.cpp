// store.cpp — SQLite schema, migrations and queries (see store.hpp).
#include "store.hpp"
#include "store_sql.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

namespace vigil::controller {
using namespace sql;
namespace {

bool type_indexed(EventType t) {
  switch (t) {
    case EventType::task_start: case EventType::task_exit: case EventType::checkpoint_signal:
    case EventType::result: case EventType::checkpoint: case EventType::output:
      return false;
    default:
      return true;
  }
}

#define JOB_COLUMNS \
  "job,coalesce(uid,-1),coalesce(user,''),state,first_ns,last_ns,events,coalesce(label,''),restart," \
  "coalesce(slurm_state,''),incarnation,submit_s,result_seq,dump_seq,results,timeline_forgotten_ns"

JobRow job_from_row(sqlite3_stmt* s) {
  JobRow r;
  r.job = static_cast<JobKey>(sqlite3_column_int64(s, 0));
  r.uid = static_cast<uid_t>(sqlite3_column_int64(s, 1));
  r.user = text_col(s, 2);
  r.state = text_col(s, 3);
  r.first_ns = sqlite3_column_int64(s, 4);
  r.last_ns = sqlite3_column_int64(s, 5);
  r.events = sqlite3_column_int64(s, 6);
  r.label = text_col(s, 7);
  r.restart = static_cast<std::uint32_t>(sqlite3_column_int64(s, 8));
  r.slurm_state = text_col(s, 9);
  r.incarnation = static_cast<std::uint32_t>(sqlite3_column_int64(s, 10));
  r.submit_s = sqlite3_column_int64(s, 11);
  r.result_seq = sqlite3_column_int64(s, 12);
  r.dump_seq = sqlite3_column_int64(s, 13);
  r.results = sqlite3_column_int64(s, 14);
  r.timeline_forgotten_ns = sqlite3_column_int64(s, 15);
  return r;
}

}  // namespace

struct Store::Stmts {
  Stmt insert_event, upsert_job, set_owner, set_state, owner, count, add_transition, get_state, ensure_job, slurm_info;
};

// WAL checkpoints (copying committed pages from the WAL into the database file
// and syncing it) on a thread and connection of their own, so that the writer's
// commits, and the acknowledgements waiting on them, do not pay for them: with
// SQLite's automatic checkpoint the intake thread copied ~1000 pages and synced
// the database file every ~25 commits. The writer pokes this thread once the
// WAL holds kCheckpointPages, then again every kPokeEveryPages (not after every
// commit: each pass copies the pages rewritten since the last one and syncs the
// database file). Durability is the WAL's: a commit is synced there before it is
// acknowledged, and a checkpoint syncs the database file (synchronous=FULL)
// before SQLite may reuse those WAL frames. PASSIVE: it never waits for, nor
// blocks, the writer or readers.
// SQLite restarts the WAL from its beginning only when a write transaction
// begins with the WAL entirely copied, which a checkpoint running beside a busy
// writer rarely achieves. So at kWalBackstopPages the writer runs the last
// pass itself, between its commit and its next transaction: by then nearly
// everything is copied, so it costs one sync of the database file, and the WAL
// file stays under ~64 MB.
class Store::Checkpointer {
 public:
  static constexpr int kCheckpointPages = 1000;    // SQLite's own default (wal_autocheckpoint)
  static constexpr int kPokeEveryPages = 256;      // 1 MiB of WAL between passes
  static constexpr int kWalBackstopPages = 16000;  // ~64 MB of WAL

  explicit Checkpointer(sqlite3* db) : db_(db), thread_([this] { run(); }) {}
  ~Checkpointer() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    sqlite3_close_v2(db_);
  }
  void poke() {
    {
      std::lock_guard<std::mutex> g(mu_);
      due_ = true;
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return due_ || stop_; });
      if (stop_) return;
      due_ = false;
      lk.unlock();
      sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      lk.lock();
    }
  }

  sqlite3* db_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool due_ = false, stop_ = false;
  std::thread thread_;
};

Store::Store(sqlite3* db) : db_(db), st_(std::make_unique<Stmts>()) {}

Store::~Store() {
  if (ckpt_) sqlite3_wal_hook(db_, nullptr, nullptr);
  ckpt_.reset();  // joins its thread first: the writer's close then checkpoints the rest
  st_.reset();
  sqlite3_finalize(put_step_);
  sqlite3_finalize(step_row_);
  sqlite3_finalize(add_usage_);
  sqlite3_finalize(add_job_hour_);
  sqlite3_close_v2(db_);
}

// After every commit of the writer, with the WAL's size in pages.
int Store::on_wal_commit(void* self, sqlite3* db, const char*, int pages) {
  auto* st = static_cast<Store*>(self);
  if (pages >= Checkpointer::kWalBackstopPages) {
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (pages >= Checkpointer::kCheckpointPages &&
             (pages < st->wal_poked_at_ || pages - st->wal_poked_at_ >= Checkpointer::kPokeEveryPages)) {
    st->wal_poked_at_ = pages;
    st->ckpt_->poke();
  }
  return SQLITE_OK;
}

Status Store::start_checkpointer(const std::string& path) {
  sqlite3* c = nullptr;
  if (sqlite3_open_v2(path.c_str(), &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    Error e = make_error(Errc::io, "cannot open database " + path + " for checkpoints: " + (c ? sqlite3_errmsg(c) : "?"));
    sqlite3_close_v2(c);
    return e;
  }
  if (auto s = exec(c, "PRAGMA synchronous=FULL"); !s) {
    sqlite3_close_v2(c);
    return s;
  }
  ckpt_ = std::make_unique<Checkpointer>(c);
  sqlite3_wal_hook(db_, &Store::on_wal_commit, this);  // replaces SQLite's automatic checkpoint
  return ok_status();
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path, bool read_only) {
  // SQLite's memory statistics take a global mutex around every allocation it
  // makes (~0.2 us per inserted row, measured); vigild reads none of them. Only
  // possible before SQLite initialises; later calls are refused, harmlessly.
  static std::once_flag no_memstatus;
  std::call_once(no_memstatus, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  sqlite3* db = nullptr;
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    Error e = make_error(Errc::io, "cannot open database " + path + ": " + (db ? sqlite3_errmsg(db) : "?"));
    sqlite3_close_v2(db);
    return e;
  }
  std::unique_ptr<Store> st(new Store(db));
  if (auto s = read_only ? st->check_schema(path) : st->prepare_schema(); !s) return s.error();
  auto prep = [&](Stmt& s, const char* sql) { return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s.s, nullptr) == SQLITE_OK; };
  if (!prep(st->st_->insert_event,
            "INSERT OR IGNORE INTO events(id,type,ts_ns,job,step,task,restart,node,sender_uid,attrs,received_ns)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?)") ||
      !prep(st->st_->upsert_job,
            "INSERT INTO jobs(job,first_ns,last_ns,events,result_seq,results) VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT(job) DO UPDATE SET"
            " last_ns=max(last_ns,?3), events=events+?4, result_seq=max(result_seq,?5), results=results+?6") ||
      !prep(st->st_->set_owner, "UPDATE jobs SET uid=coalesce(uid,?2), user=CASE WHEN uid IS NULL THEN ?3 ELSE user END,"
            " label=coalesce(?4,label), study=coalesce(?4,study) WHERE job=?1") ||
      !prep(st->st_->set_state, "UPDATE jobs SET state=?2 WHERE job=?1") ||
      !prep(st->st_->add_transition,
            "INSERT INTO transitions(job,from_state,to_state,reason,ts_ns) VALUES(?1,?2,?3,?4,?5)") ||
      !prep(st->st_->get_state, "SELECT state, restart FROM jobs WHERE job=?1") ||
      !prep(st->st_->ensure_job,
            "INSERT INTO jobs(job,first_ns,last_ns,events) VALUES(?1,?2,?2,0) ON CONFLICT(job) DO NOTHING") ||
      !prep(st->st_->slurm_info, "UPDATE jobs SET slurm_state=?2, restart=max(restart,?3),"
            " submit_s=CASE WHEN ?4>0 THEN ?4 ELSE submit_s END WHERE job=?1") ||
      !prep(st->st_->owner, "SELECT uid FROM jobs WHERE job=? AND uid IS NOT NULL") ||
      // Events are never deleted, so the AUTOINCREMENT high-water mark is the
      // count, found in O(log n) instead of a scan of millions of rows.
      !prep(st->st_->count, "SELECT coalesce(max(seq), 0) FROM events"))
    return db_error(db, "prepare");
  if (!read_only)
    if (auto c = st->start_checkpointer(path); !c) return c.error();
  return st;
}

// The writer: WAL (readers never block it), synchronous=FULL (a commit survives
// power loss, which is what "acknowledged" promises; group commit pays for it),
// then the migrations this binary knows.
Status Store::prepare_schema() {
  // cache_size -65536: 64 MiB of page cache, so index pages stay in memory.
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON",
                             "PRAGMA busy_timeout=5000", "PRAGMA cache_size=-65536",
                             "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"})
    if (auto s = exec(db_, pragma); !s) return s;
  const int version = schema_version();
  if (version > kSchemaVersion)
    return make_error(Errc::bad_version, "database schema " + std::to_string(version) +
                                             " is newer than this vigild (" + std::to_string(kSchemaVersion) + ")");
  for (int v = version + 1; v <= kSchemaVersion; ++v) {
    std::string sql = std::string("BEGIN;") + kMigrations[v - 1] +
                      "INSERT OR REPLACE INTO meta VALUES('schema_version','" + std::to_string(v) + "');COMMIT;";
    if (auto s = exec(db_, sql.c_str()); !s) {
      exec(db_, "ROLLBACK");
      return make_error(Errc::io, "migration to schema " + std::to_string(v) + " failed: " + s.error().message);
    }
  }
  return ok_status();
}

// A reader: the writer owns schema and journal mode; just check we agree.
Status Store::check_schema(const std::string& path) {
  if (auto s = exec(db_, "PRAGMA busy_timeout=5000"); !s) return s;
  if (schema_version() != kSchemaVersion)
    return make_error(Errc::bad_version, "database " + path + " is not at schema " + std::to_string(kSchemaVersion));
  return ok_status();
}

int Store::schema_version() {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key='schema_version'", -1, &s.s, nullptr) != SQLITE_OK)
    return 0;
  return sqlite3_step(s.s) == SQLITE_ROW ? std::atoi(text_col(s.s, 0).c_str()) : 0;
}

Status Store::begin() {
  touches_.clear();
  return exec(db_, "BEGIN IMMEDIATE");
}

Status Store::commit() {
  if (auto f = flush_job_touches(); !f) return f;
  return exec(db_, "COMMIT");
}

void Store::rollback() {
  touches_.clear();
  exec(db_, "ROLLBACK");
}

Status Store::flush_job_touches() {
  sqlite3_stmt* u = st_->upsert_job.s;
  for (const auto& [job, t] : touches_) {
    sqlite3_reset(u);
    sqlite3_bind_int64(u, 1, job);
    sqlite3_bind_int64(u, 2, t.first_ns);
    sqlite3_bind_int64(u, 3, t.last_ns);
    sqlite3_bind_int64(u, 4, t.count);
    sqlite3_bind_int64(u, 5, t.result_seq);
    sqlite3_bind_int64(u, 6, t.results);
    if (sqlite3_step(u) != SQLITE_DONE) return db_error(db_, "upsert job");
  }
  touches_.clear();
  return ok_status();
}

Result<InsertOutcome> Store::insert(const Event& e, uid_t sender_uid, std::int64_t received_ns) {
  sqlite3_stmt* s = st_->insert_event.s;
  sqlite3_reset(s);
  sqlite3_bind_blob(s, 1, e.id.data(), static_cast<int>(e.id.size()), SQLITE_STATIC);
  sqlite3_bind_int(s, 2, static_cast<int>(e.type));
  sqlite3_bind_int64(s, 3, e.ts_ns);
  sqlite3_bind_int64(s, 4, e.job);
  if (e.step != kNoStep) sqlite3_bind_int64(s, 5, e.step); else sqlite3_bind_null(s, 5);
  if (e.task >= 0) sqlite3_bind_int(s, 6, e.task); else sqlite3_bind_null(s, 6);
  sqlite3_bind_int64(s, 7, e.restart);
  if (!e.node.empty()) sqlite3_bind_text(s, 8, e.node.c_str(), -1, SQLITE_STATIC); else sqlite3_bind_null(s, 8);
  sqlite3_bind_int64(s, 9, sender_uid);
  // The same text attrs.dump() gives, into a buffer that keeps its capacity.
  attrs_text_.clear();
  if (!e.attrs.empty()) append_json_text(attrs_text_, e.attrs);
  if (!attrs_text_.empty())
    sqlite3_bind_text(s, 10, attrs_text_.data(), static_cast<int>(attrs_text_.size()), SQLITE_STATIC);
  else
    sqlite3_bind_null(s, 10);
  sqlite3_bind_int64(s, 11, received_ns);
  if (sqlite3_step(s) != SQLITE_DONE) return db_error(db_, "insert event");
  if (sqlite3_changes(db_) == 0) return InsertOutcome::duplicate;

  // The job row's counters are updated once per job per transaction (see
  // flush_job_touches), not once per event: at 100 000 events/s that matters.
  JobTouch& t = touches_[e.job];
  t.first_ns = t.count == 0 ? e.ts_ns : std::min(t.first_ns, e.ts_ns);
  t.last_ns = t.count == 0 ? e.ts_ns : std::max(t.last_ns, e.ts_ns);
  t.count++;
  if (e.type == EventType::result) {
    t.result_seq = sqlite3_last_insert_rowid(db_);
    t.results++;
  }
  // Ownership comes only from Slurm's own processes (root), which read the
  // job's uid from slurmstepd; see docs/adr/0005-authorisation.md.
  if (sender_uid == 0 && e.attrs.contains("uid") && e.attrs["uid"].is_number_integer() && e.attrs["uid"].get<std::int64_t>() >= 0) {
    if (auto f = flush_job_touches(); !f) return f.error();  // the row must exist to take an owner
    sqlite3_stmt* o = st_->set_owner.s;
    sqlite3_reset(o);
    sqlite3_bind_int64(o, 1, e.job);
    sqlite3_bind_int64(o, 2, e.attrs["uid"].get<std::int64_t>());
    std::string user = e.attrs.value("user", std::string());
    std::string label = e.attrs.value("label", std::string());
    sqlite3_bind_text(o, 3, user.c_str(), -1, SQLITE_TRANSIENT);
    if (!label.empty()) sqlite3_bind_text(o, 4, label.c_str(), -1, SQLITE_TRANSIENT); else sqlite3_bind_null(o, 4);
    if (sqlite3_step(o) != SQLITE_DONE) return db_error(db_, "set owner");
  }
  return InsertOutcome::stored;
}

Status Store::ensure_job(std::uint32_t job, std::int64_t now_ns) {
  if (auto f = flush_job_touches(); !f) return f;
  sqlite3_stmt* s = st_->ensure_job.s;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, job);
  sqlite3_bind_int64(s, 2, now_ns);
  if (sqlite3_step(s) != SQLITE_DONE) return db_error(db_, "ensure job");
  return ok_status();
}

Status Store::set_owner(std::uint32_t job, uid_t uid, const std::string& user) {
  sqlite3_stmt* o = st_->set_owner.s;
  sqlite3_reset(o);
  sqlite3_bind_int64(o, 1, job);
  sqlite3_bind_int64(o, 2, uid);
  sqlite3_bind_text(o, 3, user.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_null(o, 4);
  if (sqlite3_step(o) != SQLITE_DONE) return db_error(db_, "set owner");
  return ok_status();
}

std::optional<std::pair<std::string, std::uint32_t>> Store::job_state(std::uint32_t job) {
  sqlite3_stmt* s = st_->get_state.s;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, job);
  if (sqlite3_step(s) != SQLITE_ROW) return std::nullopt;
  auto out = std::make_pair(text_col(s, 0), static_cast<std::uint32_t>(sqlite3_column_int64(s, 1)));
  sqlite3_reset(s);  // no read transaction left open (see Stmt)
  return out;
}

Status Store::transition(std::uint32_t job, const std::string& from, const std::string& to, const std::string& reason,
                         std::int64_t ts_ns) {
  sqlite3_stmt* t = st_->set_state.s;
  sqlite3_reset(t);
  sqlite3_bind_int64(t, 1, job);
  sqlite3_bind_text(t, 2, to.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(t) != SQLITE_DONE) return db_error(db_, "set state");
  sqlite3_stmt* a = st_->add_transition.s;
  sqlite3_reset(a);
  sqlite3_bind_int64(a, 1, job);
  sqlite3_bind_text(a, 2, from.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(a, 3, to.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(a, 4, reason.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(a, 5, ts_ns);
  if (sqlite3_step(a) != SQLITE_DONE) return db_error(db_, "add transition");
  return ok_status();
}

Status Store::record_slurm_view(std::uint32_t job, const std::string& slurm_state, std::uint32_t restart,
                                std::int64_t submit_s) {
  sqlite3_stmt* s = st_->slurm_info.s;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, job);
  sqlite3_bind_text(s, 2, slurm_state.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 3, restart);
  sqlite3_bind_int64(s, 4, submit_s);
  if (sqlite3_step(s) != SQLITE_DONE) return db_error(db_, "record slurm view");
  return ok_status();
}

Result<std::vector<TransitionRow>> Store::transitions(JobKey job) {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT from_state,to_state,reason,ts_ns FROM transitions WHERE job=? ORDER BY seq", -1,
                         &s.s, nullptr) != SQLITE_OK)
    return db_error(db_, "transitions");
  sqlite3_bind_int64(s.s, 1, job);
  std::vector<TransitionRow> out;
  while (sqlite3_step(s.s) == SQLITE_ROW)
    out.push_back({text_col(s.s, 0), text_col(s.s, 1), text_col(s.s, 2), sqlite3_column_int64(s.s, 3)});
  return out;
}

std::optional<uid_t> Store::job_owner(JobKey job) {
  sqlite3_stmt* s = st_->owner.s;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, job);
  std::optional<uid_t> out;
  if (sqlite3_step(s) == SQLITE_ROW) out = static_cast<uid_t>(sqlite3_column_int64(s, 0));
  sqlite3_reset(s);  // no read transaction left open (see Stmt)
  return out;
}

std::int64_t Store::event_count() {
  sqlite3_stmt* s = st_->count.s;
  sqlite3_reset(s);
  const std::int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_reset(s);  // no read transaction left open (see Stmt)
  return n;
}

// Newest first: the current jobs by id, then archived ones (ADR 0017), each a
// range of the rowid (no sort).
Result<std::vector<JobRow>> Store::jobs(std::optional<uid_t> only_uid, int limit) {
  std::vector<JobRow> out;
  for (const char* range : {"job < 4294967296", "job >= 4294967296"}) {
    Stmt s;
    const std::string sql = std::string("SELECT " JOB_COLUMNS " FROM jobs WHERE ") + range +
                            (only_uid ? " AND uid=?2" : "") + " ORDER BY job DESC LIMIT ?1";
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s.s, nullptr) != SQLITE_OK) return db_error(db_, "jobs");
    sqlite3_bind_int(s.s, 1, limit - static_cast<int>(out.size()));
    if (only_uid) sqlite3_bind_int64(s.s, 2, *only_uid);
    while (sqlite3_step(s.s) == SQLITE_ROW) out.push_back(job_from_row(s.s));
  }
  return out;
}

std::map<std::string, std::int64_t> Store::jobs_by_state() {
  std::map<std::string, std::int64_t> out;
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT state, count(*) FROM jobs GROUP BY state", -1, &s.s, nullptr) != SQLITE_OK)
    return out;
  while (sqlite3_step(s.s) == SQLITE_ROW) out[text_col(s.s, 0)] = sqlite3_column_int64(s.s, 1);
  return out;
}

std::optional<JobRow> Store::job_row(JobKey job) {
  Stmt s;
  if (sqlite3_prepare_v2(db_, "SELECT " JOB_COLUMNS " FROM jobs WHERE job=?1", -1, &s.s, nullptr) != SQLITE_OK)
    return std::nullopt;
  sqlite3_bind_int64(s.s, 1, job);
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::nullopt;
  return job_from_row(s.s);
}

Result<std::vector<StoredEvent>> Store::events(std::optional<JobKey> job, std::int64_t after_seq, int limit,
                                               std::optional<uid_t> only_uid, std::optional<EventType> only_type,
                                               bool exclude_type, bool newest) {
  Stmt s;
  std::string sql =
      "SELECT e.seq,e.id,e.type,e.ts_ns,e.job,e.step,e.task,e.restart,e.node,e.sender_uid,e.attrs,e.received_ns"
      " FROM events e LEFT JOIN jobs j ON j.job=e.job WHERE e.seq>?1";
  if (job) sql += " AND e.job=?3";
  if (only_uid) sql += " AND j.uid=?4";
  if (only_type) sql += exclude_type ? " AND e.type<>?5" : " AND e.type=?5";
  if (only_type && !exclude_type && type_indexed(*only_type)) sql += " AND " VIGIL_UNINDEXED_TYPES;
  sql += newest ? " ORDER BY e.seq DESC LIMIT ?2" : " ORDER BY e.seq LIMIT ?2";
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s.s, nullptr) != SQLITE_OK) return db_error(db_, "events");
  sqlite3_bind_int64(s.s, 1, after_seq);
  sqlite3_bind_int(s.s, 2, limit);
  if (job) sqlite3_bind_int64(s.s, 3, static_cast<std::int64_t>(*job));
  if (only_uid) sqlite3_bind_int64(s.s, 4, *only_uid);
  if (only_type) sqlite3_bind_int(s.s, 5, static_cast<int>(*only_type));
  std::vector<StoredEvent> out;
  while (sqlite3_step(s.s) == SQLITE_ROW) {
    StoredEvent r;
    r.seq = sqlite3_column_int64(s.s, 0);
    if (sqlite3_column_bytes(s.s, 1) == 16) std::memcpy(r.event.id.data(), sqlite3_column_blob(s.s, 1), 16);
    r.event.type = static_cast<EventType>(sqlite3_column_int(s.s, 2));
    r.event.ts_ns = sqlite3_column_int64(s.s, 3);
    r.event.job = static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 4));
    r.event.step = sqlite3_column_type(s.s, 5) == SQLITE_NULL ? kNoStep : static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 5));
    r.event.task = sqlite3_column_type(s.s, 6) == SQLITE_NULL ? -1 : sqlite3_column_int(s.s, 6);
    r.event.restart = static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 7));
    r.event.node = text_col(s.s, 8);
    r.sender_uid = static_cast<uid_t>(sqlite3_column_int64(s.s, 9));
    std::string attrs = text_col(s.s, 10);
    r.event.attrs = attrs.empty() ? json::object() : json::parse(attrs, nullptr, false);
    r.received_ns = sqlite3_column_int64(s.s, 11);
    out.push_back(std::move(r));
  }
  if (newest) std::reverse(out.begin(), out.end());
  return out;
}

std::string Store::latest_sql(EventType type) {
  return std::string("SELECT max(seq) FROM events WHERE job=?1 AND type=?2") +
         (type_indexed(type) ? " AND " VIGIL_UNINDEXED_TYPES : "");
}

std::optional<StoredEvent> Store::latest(JobKey job, EventType type) {
  Stmt s;
  if (sqlite3_prepare_v2(db_, latest_sql(type).c_str(), -1, &s.s, nullptr) != SQLITE_OK) return std::nullopt;
  sqlite3_bind_int64(s.s, 1, job);
  sqlite3_bind_int(s.s, 2, static_cast<int>(type));
  if (sqlite3_step(s.s) != SQLITE_ROW || sqlite3_column_type(s.s, 0) == SQLITE_NULL) return std::nullopt;
  auto r = events(job, sqlite3_column_int64(s.s, 0) - 1, 1, std::nullopt, type);
  if (!r || r->empty()) return std::nullopt;
  return std::move(r->front());
}

std::int64_t Store::count_events(JobKey job, EventType type) {
  Stmt s;
  const std::string sql = std::string("SELECT count(*) FROM events WHERE job=?1 AND type=?2") +
                          (type_indexed(type) ? " AND " VIGIL_UNINDEXED_TYPES : "");
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s.s, nullptr) != SQLITE_OK) return 0;
  sqlite3_bind_int64(s.s, 1, job);
  sqlite3_bind_int(s.s, 2, static_cast<int>(type));
  return sqlite3_step(s.s) == SQLITE_ROW ? sqlite3_column_int64(s.s, 0) : 0;
}

std::int64_t Store::last_insert_seq() const { return sqlite3_last_insert_rowid(db_); }

}  // namespace vigil::controller
