// Store: migrations, idempotent insert, ownership, persistence across reopen.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "store.hpp"
#include "store_sql.hpp"

using namespace vigil;
using namespace vigil::controller;

namespace {
struct TempDb {
  std::filesystem::path path;
  TempDb() {
    char tmpl[] = "/tmp/vigil-store-XXXXXX";
    path = std::filesystem::path(mkdtemp(tmpl)) / "v.db";
  }
  ~TempDb() { std::filesystem::remove_all(path.parent_path()); }
};

Event ev(EventType t, std::uint32_t job) {
  Event e;
  e.id = new_event_id();
  e.type = t;
  e.ts_ns = 1000;
  e.job = job;
  return e;
}
}  // namespace

TEST(Store, MigratesAndInsertsIdempotently) {
  TempDb db;
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok()) << s.error().what();
  EXPECT_EQ((*s)->schema_version(), kSchemaVersion);
  Event e = ev(EventType::step_start, 7);
  e.attrs = {{"uid", 1001}, {"user", "alice"}};
  ASSERT_TRUE((*s)->begin().ok());
  EXPECT_EQ(*(*s)->insert(e, 0, 5), InsertOutcome::stored);
  EXPECT_EQ(*(*s)->insert(e, 0, 6), InsertOutcome::duplicate);
  ASSERT_TRUE((*s)->commit().ok());
  EXPECT_EQ((*s)->event_count(), 1);
  EXPECT_EQ((*s)->job_owner(7), 1001u);
  EXPECT_FALSE((*s)->job_owner(8).has_value());
}

TEST(Store, OwnershipOnlyFromRoot) {
  TempDb db;
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  Event e = ev(EventType::step_start, 9);
  e.attrs = {{"uid", 0}};
  ASSERT_TRUE((*s)->begin().ok());
  ASSERT_TRUE((*s)->insert(e, 1001, 1).ok());  // a user claiming root's job: no ownership
  ASSERT_TRUE((*s)->commit().ok());
  EXPECT_FALSE((*s)->job_owner(9).has_value());
}

TEST(Store, SurvivesReopenAndRollbackLosesNothingCommitted) {
  TempDb db;
  Event a = ev(EventType::heartbeat, 1), b = ev(EventType::heartbeat, 1);
  {
    auto s = Store::open(db.path);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->begin().ok());
    ASSERT_TRUE((*s)->insert(a, 0, 1).ok());
    ASSERT_TRUE((*s)->commit().ok());
    ASSERT_TRUE((*s)->begin().ok());
    ASSERT_TRUE((*s)->insert(b, 0, 1).ok());
    (*s)->rollback();
  }
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->event_count(), 1);
  auto evs = (*s)->events(1u, 0, 10, std::nullopt);
  ASSERT_TRUE(evs.ok());
  ASSERT_EQ(evs->size(), 1u);
  EXPECT_EQ((*evs)[0].event.id, a.id);
}

// Reads through a Store (the writer's connection or a reader's) must not leave
// a read transaction open behind them: it pins the WAL at that snapshot, no
// checkpoint can copy anything newer, and the WAL and its shared-memory index
// (mapped into vigild, so RSS) grow for as long as vigild runs.
TEST(Store, ReadsLeaveNoSnapshotPinningTheWal) {
  TempDb db;
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  auto r = Store::open(db.path, /*read_only=*/true);
  ASSERT_TRUE(r.ok());
  Event start = ev(EventType::step_start, 7);
  start.attrs = {{"uid", 1001}, {"user", "alice"}};
  ASSERT_TRUE((*s)->begin().ok());
  ASSERT_TRUE((*s)->insert(start, 0, 1).ok());
  ASSERT_TRUE((*s)->commit().ok());
  for (Store* st : {s->get(), r->get()}) {
    EXPECT_TRUE(st->job_state(7).has_value());
    EXPECT_EQ(st->job_owner(7), 1001u);
    EXPECT_EQ(st->event_count(), 1);
  }
  ASSERT_TRUE((*s)->begin().ok());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE((*s)->insert(ev(EventType::heartbeat, 7), 0, 2).ok());
  ASSERT_TRUE((*s)->commit().ok());
  sqlite3* c = nullptr;
  ASSERT_EQ(sqlite3_open(db.path.c_str(), &c), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(c, "SELECT count(*) FROM meta", nullptr, nullptr, nullptr), SQLITE_OK);  // opens the WAL
  int log = -1, done = -1;
  EXPECT_EQ(sqlite3_wal_checkpoint_v2(c, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done), SQLITE_OK);
  sqlite3_close(c);
  EXPECT_GT(log, 0);
  EXPECT_EQ(done, log) << "a reader still holds an old snapshot: the WAL cannot be checkpointed";
}

// WAL checkpoints run on the store's own thread (and, as a backstop, in the
// writer): under a steady stream of commits the database file receives the
// pages and the WAL stays bounded (~64 MB at most), nothing is lost.
TEST(Store, CheckpointsKeepTheWalBounded) {
  TempDb db;
  const auto wal = std::filesystem::path(db.path.string() + "-wal");
  std::uintmax_t wal_max = 0;
  {
    auto s = Store::open(db.path);
    ASSERT_TRUE(s.ok());
    for (int c = 0; c < 1500; ++c) {
      ASSERT_TRUE((*s)->begin().ok());
      for (int i = 0; i < 100; ++i) {
        Event e = ev(EventType::heartbeat, 1 + i % 8);
        e.attrs = {{"tasks", 1}, {"cpu_s", 1.5 * c}, {"rss_bytes", 1 << 20}, {"interval_s", 5}};
        ASSERT_TRUE((*s)->insert(e, 0, c).ok());
      }
      ASSERT_TRUE((*s)->commit().ok());
      if (std::filesystem::exists(wal)) wal_max = std::max(wal_max, std::filesystem::file_size(wal));
    }
    EXPECT_GT(std::filesystem::file_size(db.path), 8u << 20) << "nothing was checkpointed into the database file";
    EXPECT_LT(wal_max, 70u << 20);
  }
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->event_count(), 150000);
}

// Attributes are stored as the JSON text json::dump gives, and read back equal.
TEST(Store, AttrsStoredAsDumpText) {
  TempDb db;
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  Event e = ev(EventType::result, 3);
  e.attrs = {{"name", "loss \"x\"\n\u00e9"}, {"value", 0.1}, {"step", 12}, {"neg", -4}, {"big", 1e300},
             {"whole", 3.0}, {"nested", {{"a", json::array({1, nullptr, true})}}}, {"bad_utf8", "\xff\xfe"}};
  ASSERT_TRUE((*s)->begin().ok());
  ASSERT_TRUE((*s)->insert(e, 0, 1).ok());
  ASSERT_TRUE((*s)->commit().ok());
  sqlite3* c = nullptr;
  ASSERT_EQ(sqlite3_open(db.path.c_str(), &c), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(c, "SELECT attrs FROM events", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  const std::string text(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)));
  sqlite3_finalize(q);
  sqlite3_close(c);
  EXPECT_EQ(text, e.attrs.dump(-1, ' ', false, json::error_handler_t::replace));
  auto back = (*s)->events(3u, 0, 10, std::nullopt);
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].event.attrs["whole"].type(), json::value_t::number_float);
  EXPECT_EQ((*back)[0].event.attrs["step"], 12);
}

// Decisions find "the newest X of job J" through the (job, type) index, never by
// walking J's timeline (issue 11); the index leaves out the numerous types
// nobody looks up that way (schema v5), and SQLite uses such a partial index
// only if the query repeats its condition: check the plan says so.
TEST(Store, DecisionLookupsUseTheTypeIndex) {
  TempDb db;
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  s->reset();
  sqlite3* c = nullptr;
  ASSERT_EQ(sqlite3_open(db.path.c_str(), &c), SQLITE_OK);
  auto plan = [&](const std::string& sql) {
    std::string out;
    sqlite3_stmt* q = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(c, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &q, nullptr), SQLITE_OK) << sql;
    while (q && sqlite3_step(q) == SQLITE_ROW) out += reinterpret_cast<const char*>(sqlite3_column_text(q, 3)) + std::string("; ");
    sqlite3_finalize(q);
    return out;
  };
  for (EventType t : {EventType::job_start, EventType::step_start, EventType::job_end, EventType::recovery,
                      EventType::checkpoint_verified, EventType::output_registered, EventType::results_final})
    EXPECT_NE(plan(Store::latest_sql(t)).find("events_by_job_type"), std::string::npos)
        << event_type_name(t) << ": " << plan(Store::latest_sql(t));
  // A result row costs no entry in it.
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(c, "SELECT sql FROM sqlite_master WHERE name='events_by_job_type'", -1, &q, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_NE(std::string(reinterpret_cast<const char*>(sqlite3_column_text(q, 0))).find(VIGIL_UNINDEXED_TYPES),
            std::string::npos);
  sqlite3_finalize(q);
  // And an insert checks that condition without building a temporary B-tree
  // (an IN list did, on every row: schema v8).
  ASSERT_EQ(sqlite3_prepare_v2(c, "EXPLAIN INSERT OR IGNORE INTO events(id, type, ts_ns, job, sender_uid, received_ns)"
                                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6)", -1, &q, nullptr), SQLITE_OK);
  int ephemeral = 0;
  while (sqlite3_step(q) == SQLITE_ROW)
    ephemeral += std::string(reinterpret_cast<const char*>(sqlite3_column_text(q, 1))) == "OpenEphemeral";
  sqlite3_finalize(q);
  EXPECT_EQ(ephemeral, 0);
  // "Account A (user U, study S) per hour over a month" starts from that
  // account's jobs and reads their hourly rows by key (schema v6).
  for (auto [f, index] : {std::pair{Store::UsageFilter{"acct", std::nullopt, std::nullopt, std::nullopt}, "jobs_by_account"},
                          std::pair{Store::UsageFilter{std::nullopt, "alice", std::nullopt, std::nullopt}, "jobs_by_user"},
                          std::pair{Store::UsageFilter{std::nullopt, std::nullopt, "study1", std::nullopt}, "jobs_by_study"}}) {
    const std::string p = plan(Store::usage_sql(f, true));
    EXPECT_NE(p.find(index), std::string::npos) << p;
    EXPECT_NE(p.find("SEARCH u USING PRIMARY KEY"), std::string::npos) << p;
  }
  sqlite3_close(c);
}

// A job of months: `vigil show` lists its newest events, in order, and counts
// its results from the job row, not from rows that may have left (ADR 0018).
TEST(Store, TheNewestEventsOfAJobAndItsResultCount) {
  TempDb db;
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->begin().ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE((*s)->insert(ev(EventType::checkpoint, 3), 0, i).ok());
    ASSERT_TRUE((*s)->insert(ev(EventType::result, 3), 0, i).ok());
  }
  ASSERT_TRUE((*s)->commit().ok());
  auto newest = (*s)->events(3, 0, 3, std::nullopt, EventType::result, true, true);
  ASSERT_TRUE(newest.ok());
  ASSERT_EQ(newest->size(), 3u);
  EXPECT_EQ((*newest)[0].seq, 15);
  EXPECT_EQ((*newest)[2].seq, 19);
  EXPECT_EQ((*s)->job_row(3)->results, 10);
  EXPECT_EQ((*s)->job_row(3)->result_seq, 20);
}
