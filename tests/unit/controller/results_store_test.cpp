// results_store_test.cpp — result values leave the store once their dump has
// them on disk (ADR 0018): the store keeps replay ids, then lets them go; a
// `results` query reads what left from the file; a restart reopens the dump;
// the schema v5 -> v6 migration finds the dumps to rebuild.
#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "modules/results_module.hpp"
#include "modules_fixture.hpp"

namespace vigil::controller::modtest {
namespace {

class ResultsStoreTest : public ModulesTest {
 protected:
  void SetUp() override {
    ModulesTest::SetUp();
    stop();
    cfg.results_dir = (dir / "results").string();
    cfg.results_sync_s = 1;
    cfg.results_replay_h = 1;
    start();
  }
  Event value(std::uint32_t job, std::int64_t step) {
    return ev(EventType::result, job, 0, "n1",
              {{"kind", "scalar"}, {"name", "energy"}, {"units", "J"}, {"step", step}, {"sim_t", step * 0.5},
               {"v", step * 10.0}});
  }
  // Ticks the modules as the intake does (a sync is asked for every
  // results_sync_s) until the store has let go of `n` values.
  bool pruned(std::uint64_t n) {
    for (int i = 0; i < 100 && core->counters.results_pruned < n; ++i) {
      advance(0.5);
      modules.results->drain();
    }
    return core->counters.results_pruned >= n;
  }
  std::int64_t valued_rows(std::uint32_t job) {
    std::int64_t n = 0;
    for (const StoredEvent& s : of(job, EventType::result)) n += !s.event.attrs.empty();
    return n;
  }
  json results(std::uint32_t job, std::int64_t after) {
    json got;
    bool answered = false;
    core->host.request("results", Caller{0, true}, {{"job", job}, {"after", after}}, [&](Result<json> r) {
      answered = true;
      got = r ? *r : json{{"error", r.error().what()}};
    });
    for (int i = 0; i < 100 && !answered; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      advance(0.02);
    }
    return got;
  }
};

TEST_F(ResultsStoreTest, ValuesLeaveTheStoreOnceOnDiskAndAreStillQueried) {
  run_job(5, {"n1"});
  for (int i = 1; i <= 30; ++i) deliver(value(5, i));
  ASSERT_TRUE(pruned(30)) << core->counters.results_pruned;
  EXPECT_EQ(valued_rows(5), 0);
  EXPECT_EQ(of(5, EventType::result).size(), 30u);  // the replay ids
  EXPECT_EQ(store->job_row(5)->results, 30);
  EXPECT_GT(store->dump_seq(5), 0);
  // A replay of a value that left the store is still recognised.
  Event again = value(5, 1);
  again.id = of(5, EventType::result).front().event.id;
  ASSERT_TRUE(store->begin());
  EXPECT_EQ(*store->insert(again, 0, now), InsertOutcome::duplicate);
  ASSERT_TRUE(store->commit());
  // vigil tail from the start: the first values come from the file.
  json r = results(5, 0);
  ASSERT_TRUE(r.contains("values")) << r.dump();
  ASSERT_EQ(r["values"].size(), 30u);
  EXPECT_EQ(r["values"][0]["v"], 10.0);
  EXPECT_EQ(r["values"][29]["step"], 30);
  // Newer values come from the store, after the last one the file gave.
  deliver(value(5, 31));
  json more = results(5, r["last_seq"].get<std::int64_t>());
  ASSERT_EQ(more["values"].size(), 1u) << more.dump();
  EXPECT_EQ(more["values"][0]["step"], 31);
  // The replay ids go once the replay window (1 h) has passed.
  advance(3601);
  advance(61);
  EXPECT_LT(of(5, EventType::result).size(), 30u);
}

TEST_F(ResultsStoreTest, ARestartReopensTheDumpAndTheJobEndsWithEveryValueOnce) {
  run_job(6, {"n1"});
  for (int i = 1; i <= 20; ++i) deliver(value(6, i));
  ASSERT_TRUE(pruned(20));
  stop();  // vigild goes away; its dump was synced, its values left the store
  start();
  for (int i = 21; i <= 25; ++i) deliver(value(6, i));
  deliver(ev(EventType::job_end, 6, kBatch, "n1", {{"exit_code", 0}}));
  for (int i = 0; i < 100 && of(6, EventType::results_final).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    advance(0.5);
  }
  auto fin = of(6, EventType::results_final);
  ASSERT_EQ(fin.size(), 1u) << dump(6);
  EXPECT_TRUE(fin[0].event.attrs["ok"].get<bool>()) << fin[0].event.attrs.dump();
  EXPECT_EQ(fin[0].event.attrs["records"], 25);
  EXPECT_EQ(valued_rows(6), 0);  // finalised: every value is in the file only
  json r = results(6, 0);
  ASSERT_EQ(r["values"].size(), 25u) << r.dump();
  for (int i = 0; i < 25; ++i) EXPECT_EQ(r["values"][i]["step"], i + 1);
}

// A v5 database (before result_seq) opens as v6 and still finds the dump to
// finish of a job that has results.
TEST_F(ResultsStoreTest, AVersion5DatabaseMigratesAndFindsItsDumps) {
  run_job(7, {"n1"});
  deliver(value(7, 1));
  stop();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(cfg.database.c_str(), &db), SQLITE_OK);
  for (const char* sql : kUndoSchema6)
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
  for (const char* sql : {"UPDATE meta SET value='5' WHERE key='schema_version'"})
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
  sqlite3_close(db);
  start();
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  auto todo = store->jobs_needing_dump();
  ASSERT_TRUE(todo);
  ASSERT_EQ(todo->size(), 1u);
  EXPECT_EQ(todo->front().first, 7u);
  EXPECT_EQ(store->job_row(7)->results, 1);
}

TEST_F(ResultsStoreTest, AMarkForAJobThisStoreDoesNotKnowIsIgnored) {
  run_job(8, {"n1"});
  deliver(value(8, 1));
  ASSERT_TRUE(store->begin());
  auto n = store->mark_dumped({8, 1, 0, 1'000'000});  // incarnation 1: a later job nobody has seen
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0);
  ASSERT_TRUE(store->commit());
  EXPECT_EQ(store->dump_seq(8), 0);
  EXPECT_EQ(valued_rows(8), 1);
}

}  // namespace
}  // namespace vigil::controller::modtest
