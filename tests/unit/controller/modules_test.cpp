// modules_test.cpp — vigild's modules on their own (modules_fixture.hpp): a
// real store, an injected clock, a fake Slurm.
#include <sqlite3.h>

#include "modules_fixture.hpp"

namespace vigil::controller {
namespace {

using namespace vigil::controller::modtest;

TEST_F(ModulesTest, ALostNodeRequeuesTheJobWithoutIt) {
  run_job(7, {"n1", "n2"});
  EXPECT_EQ(state(7), "RUNNING");
  for (int i = 0; i < 3; ++i) {
    advance(1);
    beat(7, "n1", i);
  }
  ASSERT_EQ(of(7, EventType::node_lost).size(), 1u);
  EXPECT_EQ(of(7, EventType::node_lost)[0].event.node, "n2");
  EXPECT_EQ(state(7), "RECOVERING");
  EXPECT_FALSE(slurm.saw("requeue 7")) << "the backoff comes first";
  run_for(5.1, 7, {"n1"});
  EXPECT_TRUE(slurm.saw("down n2")) << ::testing::PrintToString(slurm.calls) << dump(7);
  EXPECT_TRUE(slurm.saw("requeue 7"));
  EXPECT_TRUE(slurm.saw("exclude 7 n2 release"));
  const auto rec = of(7, EventType::recovery);
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_EQ(rec[0].event.attrs["action"], "requeue");
  EXPECT_EQ(rec[1].event.attrs["action"], "requeued");
  // the old attempt's end is stale; the next attempt runs and clears the exclusion
  deliver(ev(EventType::job_end, 7, kBatch, "n1", {{"exit_code", 15}}));
  EXPECT_EQ(state(7), "RECOVERING");
  run_job(7, {"n1", "n3"}, json::object(), 1);
  EXPECT_EQ(state(7), "RUNNING");
  const std::size_t calls = slurm.calls.size();
  advance(1);
  EXPECT_EQ(slurm.calls.size(), calls) << "no exclusion once the job runs again";
}

TEST_F(ModulesTest, ASpentBudgetFailsAndCancels) {
  run_job(8, {"n1", "n2"}, {{"retries", 0}});
  for (int i = 0; i < 3; ++i) {
    advance(1);
    beat(8, "n1", i);
  }
  EXPECT_EQ(state(8), "FAILED");
  EXPECT_TRUE(slurm.saw("cancel 8"));
  EXPECT_TRUE(slurm.saw("down n2"));
  EXPECT_EQ(of(8, EventType::recovery).at(0).event.attrs["action"], "fail");
  // Slurm's later CANCELLED does not change Vigil's verdict
  SlurmJob j;
  j.job = 8;
  j.state = "CANCELLED";
  slurm.jobs.jobs = {j};
  core->host.slurm_view(slurm.jobs.jobs, now);
  EXPECT_EQ(state(8), "FAILED");
}

TEST_F(ModulesTest, SeveralLostNodesAreOneFailureAndOneRequeue) {
  run_job(9, {"n1", "n2", "n3"});
  for (int i = 0; i < 3; ++i) {
    advance(1);
    beat(9, "n1", i);
  }
  run_for(5.1, 9, {"n1"});
  EXPECT_TRUE(slurm.saw("down n2,n3") || slurm.saw("down n3,n2")) << ::testing::PrintToString(slurm.calls);
  EXPECT_EQ(std::count(slurm.calls.begin(), slurm.calls.end(), "requeue 9"), 1);
  // the batch host lives: the release waits for the old srun (KillWait 5 + 3 s)
  EXPECT_TRUE(slurm.saw("exclude 9 n2,n3") || slurm.saw("exclude 9 n3,n2"));
  EXPECT_FALSE(slurm.saw("exclude 9 n2,n3 release"));
  deliver(ev(EventType::job_end, 9, kBatch, "n1", {{"exit_code", 15}}));
  run_for(9, 9, {"n1"});
  EXPECT_TRUE(slurm.saw("exclude 9 n2,n3 release") || slurm.saw("exclude 9 n3,n2 release"));
}

TEST_F(ModulesTest, ARequeueDecidedBeforeARestartIsCarriedOutAfterIt) {
  run_job(10, {"n1", "n2"});
  for (int i = 0; i < 3; ++i) {
    advance(1);
    beat(10, "n1", i);
  }
  ASSERT_EQ(state(10), "RECOVERING") << dump(10);
  stop();  // vigild dies during the backoff
  slurm.calls.clear();
  start();
  advance(0.1);
  EXPECT_TRUE(slurm.saw("requeue 10"));
  EXPECT_TRUE(slurm.saw("down n2"));
  // the decision is remembered across restarts: the failed attempt's other
  // node going silent is not a second failure, only marked DOWN as well
  stop();
  start();
  advance(3);
  int requeues = 0, downs = 0;
  for (const auto& r : of(10, EventType::recovery)) {
    requeues += r.event.attrs["action"] == "requeue";
    downs += r.event.attrs["action"] == "down";
  }
  EXPECT_EQ(requeues, 1) << dump(10);
  EXPECT_EQ(downs, 1) << dump(10);
  EXPECT_TRUE(slurm.saw("down n1"));
}

TEST_F(ModulesTest, NodeFailInSlurmsViewRecoversAJobVigildSawNothingOf) {
  run_job(11, {"n1"});
  SlurmJob j;
  j.job = 11;
  j.state = "NODE_FAIL";
  j.nodes = "n1";
  core->host.slurm_view({j}, now);
  EXPECT_EQ(of(11, EventType::recovery).at(0).event.attrs["trouble"], "Slurm ended it with NODE_FAIL");
  advance(5.1);
  EXPECT_TRUE(slurm.saw("requeue 11"));
  slurm.fail_requeue = true;
  // a failing requeue is recorded with its error
  run_job(12, {"n1"});
  core->host.slurm_view({[] { SlurmJob x; x.job = 12; x.state = "NODE_FAIL"; return x; }()}, now);
  advance(5.1);
  EXPECT_EQ(of(12, EventType::recovery).back().event.attrs["action"], "requeue_failed");
}

TEST_F(ModulesTest, CheckpointsAreVerifiedAndARestartResumesFromTheNewestIntactOne) {
  run_job(20, {"n1"});
  const fs::path a = file("a.ckpt", "first"), b = file("b.ckpt", "second");
  checkpoint(20, a, 10);
  advance(0.1);
  checkpoint(20, b, 20);
  checkpoint(20, dir / "missing.ckpt", 30);
  advance(0.1);
  const auto v = of(20, EventType::checkpoint_verified);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_TRUE(v[0].event.attrs["ok"].get<bool>());
  EXPECT_FALSE(v[2].event.attrs["ok"].get<bool>());
  std::ofstream(b) << "changed after verification";
  std::vector<json> answers;
  auto ask = [&] {
    ASSERT_TRUE(core->host.request("restart_from", Caller{0, true}, {{"job", 20u}, {"restart", 1}},
                                   [&](Result<json> r) { answers.push_back(r ? *r : json(r.error().what())); }));
  };
  ask();
  ask();  // a second node of the same attempt waits for the same choice
  EXPECT_TRUE(answers.empty()) << "answered once the files are digested again";
  advance(0.1);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0]["path"], a.string());
  EXPECT_EQ(answers[0]["skipped"], 1);
  EXPECT_EQ(answers[1], answers[0]);
  EXPECT_EQ(of(20, EventType::checkpoint_skipped).size(), 1u);
  EXPECT_EQ(of(20, EventType::recovery).back().event.attrs["action"], "resume");
  ask();  // remembered
  EXPECT_EQ(answers.size(), 3u);
  // a job without checkpoints, someone else's job, a bad request
  bool none = false;
  core->host.request("restart_from", Caller{0, true}, {{"job", 99u}},
                     [&](Result<json> r) { none = r && (*r)["path"].is_null(); });
  EXPECT_TRUE(none);
  std::string err;
  core->host.request("restart_from", Caller{1234, false}, {{"job", 20u}}, [&](Result<json> r) { err = r.error().what(); });
  EXPECT_NE(err.find("denied"), std::string::npos);
  core->host.request("restart_from", Caller{0, true}, {{"job", "x"}}, [&](Result<json> r) { err = r.error().what(); });
  EXPECT_NE(err.find("malformed"), std::string::npos);
}

TEST_F(ModulesTest, RetentionKeepsTheNewestKAndMakesRoomWhenTheDiskIsFull) {
  run_job(30, {"n1"}, {{"keep", 2}});
  std::vector<fs::path> files;
  for (int i = 0; i < 4; ++i) {
    files.push_back(file("c" + std::to_string(i), std::string(100, static_cast<char>('a' + i))));
    checkpoint(30, files.back(), i);
    advance(0.1);
    advance(0.1);  // the deletion's result
  }
  EXPECT_FALSE(fs::exists(files[0])) << dump(30);
  EXPECT_FALSE(fs::exists(files[1]));
  EXPECT_TRUE(fs::exists(files[2]));
  EXPECT_TRUE(fs::exists(files[3]));
  // Each pruned checkpoint is one event that says what its report and its
  // verification said; those two leave the timeline (ADR 0019).
  const auto pruned = of(30, EventType::checkpoint_pruned);
  ASSERT_EQ(pruned.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const json& a = pruned[static_cast<std::size_t>(i)].event.attrs;
    EXPECT_EQ(a["path"], files[static_cast<std::size_t>(i)].string());
    EXPECT_EQ(a["step"], i);
    EXPECT_EQ(a["node"], "n1");
    EXPECT_GT(a["reported_ns"].get<std::int64_t>(), 0);
    EXPECT_EQ(a["bytes"], 100);
    EXPECT_EQ(a["sha256"].get<std::string>().size(), 64u);
    EXPECT_EQ(a["folded"], 2) << a.dump();
  }
  EXPECT_EQ(of(30, EventType::checkpoint_verified).size(), 2u) << dump(30);
  EXPECT_EQ(of(30, EventType::checkpoint).size(), 2u);
  // out of space: everything but the newest goes, and the job goes on
  deliver(ev(EventType::checkpoint, 30, 0, "n1",
             {{"path", (dir / "c4").string()}, {"step", 4}, {"failed", true}, {"errno", ENOSPC}, {"error", "No space"}}));
  advance(0.1);
  advance(0.1);
  EXPECT_FALSE(fs::exists(files[2]));
  EXPECT_TRUE(fs::exists(files[3]));
  EXPECT_EQ(core->counters.checkpoints_failed.load(), 1u);
  EXPECT_EQ(state(30), "RUNNING");
  // after a restart the ledger is read back from the store: pruned ones are gone
  stop();
  start();
  json answer;
  core->host.request("restart_from", Caller{0, true}, {{"job", 30u}, {"restart", 1}},
                     [&](Result<json> r) { answer = r ? *r : json(r.error().what()); });
  advance(0.1);
  EXPECT_EQ(answer["path"], files[3].string()) << answer.dump();
  EXPECT_EQ(answer["skipped"], 0);
  // entries read back from the store fold too when they are pruned
  const fs::path c5 = file("c5", "five"), c6 = file("c6", "six");
  checkpoint(30, c5, 5);
  advance(0.1);
  checkpoint(30, c6, 6);
  advance(0.1);
  advance(0.1);
  EXPECT_FALSE(fs::exists(files[3]));
  EXPECT_EQ(of(30, EventType::checkpoint_pruned).back().event.attrs["folded"], 2) << dump(30);
  EXPECT_EQ(of(30, EventType::checkpoint_verified).size(), 2u) << dump(30);
  // a file changed since it was verified is not deleted
  run_job(31, {"n1"}, {{"keep", 1}});
  const fs::path x = file("x", "x"), y = file("y", "y");
  checkpoint(31, x, 1);
  advance(0.1);
  std::ofstream(x) << "rewritten by someone";
  checkpoint(31, y, 2);
  advance(0.1);
  advance(0.1);
  EXPECT_TRUE(fs::exists(x));
  const auto p = of(31, EventType::checkpoint_pruned);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_FALSE(p[0].event.attrs["deleted"].get<bool>());
}

// A v6 database kept a pruned checkpoint's report and verification beside its
// checkpoint_pruned event; opening it as v7 folds them, and the ledger read
// back holds what is kept.
TEST_F(ModulesTest, AVersion6DatabaseFoldsItsPrunedCheckpoints) {
  run_job(32, {"n1"});
  const fs::path a = file("a32", "first"), b = file("b32", "second");
  checkpoint(32, a, 1);
  advance(0.1);
  checkpoint(32, b, 2);
  advance(0.1);
  ASSERT_EQ(of(32, EventType::checkpoint_verified).size(), 2u);
  stop();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(cfg.database.c_str(), &db), SQLITE_OK);
  const std::string sql =
      "INSERT INTO events(id, type, ts_ns, job, sender_uid, attrs, received_ns) SELECT randomblob(16), 23, ts_ns + 1, "
      "job, 0, json_object('path', json_extract(attrs, '$.path'), 'step', json_extract(attrs, '$.step'), 'sha256', "
      "json_extract(attrs, '$.sha256'), 'deleted', json('true'), 'reason', 'old'), received_ns FROM events "
      "WHERE job = 32 AND type = 18 AND json_extract(attrs, '$.step') = 1;"
      "DROP INDEX jobs_to_forget; ALTER TABLE jobs DROP COLUMN timeline_forgotten_ns;"
      "ALTER TABLE jobs DROP COLUMN fence_restart; ALTER TABLE jobs DROP COLUMN fence_after_ns;"
      "ALTER TABLE jobs DROP COLUMN fence_node;"
      "UPDATE meta SET value = '6' WHERE key = 'schema_version';";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
  fs::remove(a);
  start();
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  EXPECT_EQ(of(32, EventType::checkpoint_pruned).size(), 1u);
  const auto v = of(32, EventType::checkpoint_verified);
  ASSERT_EQ(v.size(), 1u) << dump(32);
  EXPECT_EQ(v[0].event.attrs["path"], b.string());
  const auto r = of(32, EventType::checkpoint);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].event.attrs["path"], b.string());
  json answer;
  core->host.request("restart_from", Caller{0, true}, {{"job", 32u}, {"restart", 1}},
                     [&](Result<json> res) { answer = res ? *res : json(res.error().what()); });
  advance(0.1);
  EXPECT_EQ(answer["path"], b.string()) << answer.dump();
}

TEST_F(ModulesTest, ThePlannerAsksBeforeTheTimeLimitAndRequeuesAProtectedJobBeforeMaintenance) {
  run_job(40, {"n1"});
  run_job(41, {"n2"}, {{"protect", true}});
  const std::time_t t = now / kS;
  SlurmJob a;
  a.job = 40;
  a.state = "RUNNING";
  a.node_names = {"n1"};
  a.start_time = t - 3000;
  a.end_time = t + 200;  // 300 s before the end: ask now
  a.time_limit_min = 60;
  SlurmJob b = a;
  b.job = 41;
  b.node_names = {"n2"};
  b.end_time = t + 100000;
  b.time_limit_min = 10000;
  core->view.running = {a, b};
  SlurmReservation m;
  m.name = "maint";
  m.maintenance = true;
  m.start_time = t + 300;
  m.end_time = t + 3600;
  m.node_names = {"n2"};
  core->view.reservations = {m};
  std::vector<Event> batch = {ev(EventType::heartbeat, 40, 0, "n1"), ev(EventType::heartbeat, 41, 0, "n2")};
  advance(1);
  beat(40, "n1");
  beat(41, "n2");
  const auto asked = of(40, EventType::checkpoint_requested);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].event.attrs["trigger"], "time_limit");
  EXPECT_TRUE(asked[0].event.attrs.contains("command"));
  ASSERT_GE(of(41, EventType::checkpoint_requested).size(), 1u);  // maintenance (and freshness)
  EXPECT_GE(core->commands.take_for(batch, now).size(), 2u) << "delivered in the steps' next ACK";
  EXPECT_TRUE(core->commands.take_for(batch, now).empty()) << "each delivered once";
  // job 41 answers with a checkpoint: verified, then requeued cleanly
  checkpoint(41, file("p", "protected"), 5, "n2");
  advance(1);
  beat(40, "n1");
  beat(41, "n2");
  advance(1);
  const auto rec = of(41, EventType::recovery);
  ASSERT_FALSE(rec.empty()) << dump(41);
  EXPECT_EQ(rec[0].event.attrs["action"], "requeue");
  EXPECT_EQ(rec[0].event.attrs.value("planned", false), true) << dump(41);
  advance(0.1);  // carried out on the recovery module's next tick
  EXPECT_TRUE(slurm.saw("requeue 41"));
  // a user's own request; someone else's is denied
  std::string err;
  core->host.request("checkpoint", Caller{1234, false}, {{"job", 40u}}, [&](Result<json> r) { err = r.error().what(); });
  EXPECT_NE(err.find("denied"), std::string::npos);
  bool ok = false;
  core->host.request("checkpoint", Caller{0, true}, {{"job", 40u}}, [&](Result<json> r) { ok = static_cast<bool>(r); });
  EXPECT_TRUE(ok);
}

// The last sample of a step is often taken as its tasks exit (RSS 0): the
// step row keeps the peak (an e2e test saw 0 once in two runs).
TEST_F(ModulesTest, AStepRowKeepsThePeakRss) {
  run_job(51, {"n1"});
  advance(1);
  beat(51, "n1", 1.0);  // rss 4096
  advance(1);
  deliver(ev(EventType::heartbeat, 51, 0, "n1", {{"interval_s", 1}, {"cpu_s", 2.0}, {"rss_bytes", 0}}));
  auto rows = store->steps(51);
  ASSERT_TRUE(rows);
  auto n1 = std::find_if(rows->begin(), rows->end(), [](auto& r) { return r.step == 0 && r.node == "n1"; });
  ASSERT_NE(n1, rows->end());
  EXPECT_EQ(n1->heartbeats, 2);
  EXPECT_EQ(n1->rss_bytes, 4096);
  EXPECT_DOUBLE_EQ(n1->cpu_s, 2.0);
}

TEST_F(ModulesTest, HeartbeatsBecomeAStepRowAndUsageNotEvents) {
  run_job(50, {"n1", "n2"});
  for (int i = 1; i <= 5; ++i) {
    advance(1);
    beat(50, "n1", 2.0 * i);
    beat(50, "n2", 1.0 * i);
  }
  deliver(ev(EventType::heartbeat, 50, 0, "n1", {{"interval_s", 1}, {"cpu_s", 4.0}}, 0));  // a replay: nothing
  EXPECT_TRUE(of(50, EventType::heartbeat).empty());
  auto rows = store->steps(50);
  ASSERT_TRUE(rows);
  auto n1 = std::find_if(rows->begin(), rows->end(), [](auto& r) { return r.step == 0 && r.node == "n1"; });
  ASSERT_NE(n1, rows->end());
  EXPECT_EQ(n1->heartbeats, 5);
  EXPECT_EQ(n1->max_gap_ms, 1000);
  EXPECT_DOUBLE_EQ(n1->cpu_s, 10.0);
  Store::UsageFilter f;
  f.job = 50;
  auto u = store->usage(f, 0, now / kS + 60, 86400);
  ASSERT_TRUE(u);
  ASSERT_EQ(u->size(), 1u);
  EXPECT_NEAR((*u)[0].cpu_hours * 3600, 15.0, 1e-9);   // 10 on n1 + 5 on n2
  EXPECT_NEAR((*u)[0].node_hours * 3600, 10.0, 1e-9);  // 5 s on each node
  // a restart of vigild keeps counting from the stored sample
  stop();
  start();
  advance(1);
  beat(50, "n1", 12.0);
  u = store->usage(f, 0, now / kS + 60, 86400);
  EXPECT_NEAR((*u)[0].cpu_hours * 3600, 17.0, 1e-9);
  // minute rows fold into hourly rows with the same totals
  now += 3LL * 86400 * kS;
  advance(0);
  auto folded = store->usage(f, 0, now / kS, 86400);
  ASSERT_TRUE(folded);
  double cpu = 0;
  for (auto& p : *folded) cpu += p.cpu_hours * 3600;
  EXPECT_NEAR(cpu, 17.0, 1e-9);
  bool answered = false;
  core->host.request("usage", Caller{0, true}, {{"job", 50u}, {"from", 0}, {"to", now / kS}, {"interval_s", 86400}},
                     [&](Result<json> r) { answered = r && std::abs((*r)["cpu_hours"].get<double>() * 3600 - 17) < 1e-6; });
  EXPECT_TRUE(answered);
  std::string err;
  core->host.request("usage", Caller{0, true}, {{"from", 10}, {"to", 5}}, [&](Result<json> r) { err = r.error().what(); });
  EXPECT_NE(err.find("malformed"), std::string::npos);
}

}  // namespace
}  // namespace vigil::controller
