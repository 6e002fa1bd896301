// identity_test.cpp — job keys (docs/adr/0017-job-identity.md): the pure rules
// that tell a new job under a reused Slurm id from the same job again, the
// store's archiving and resolving, the v3 -> v4 migration, and the modules
// (modules_fixture.hpp) forgetting an old job when Slurm gives its id out again.
#include <sqlite3.h>

#include "identity.hpp"
#include "modules_fixture.hpp"

namespace vigil::controller {
namespace {

using namespace vigil::controller::modtest;

TEST(Identity, SlurmListingAnEarlierStateWithoutARequeueIsANewJob) {
  KnownJob k;
  k.submit_s = 1000;
  k.restart = 0;
  k.slurm_state = "COMPLETED";
  EXPECT_TRUE(slurm_reports_new_job(k, 1500, 0, "PENDING")) << "a wiped slurmctld's new job 1";
  EXPECT_TRUE(slurm_reports_new_job(k, 1500, 0, "RUNNING"));
  EXPECT_FALSE(slurm_reports_new_job(k, 1000, 0, "COMPLETED")) << "the same job";
  EXPECT_FALSE(slurm_reports_new_job(k, 1500, 1, "PENDING")) << "an admin's requeue of the ended job";
  EXPECT_FALSE(slurm_reports_new_job(k, 1000, 0, "PENDING")) << "the same submit time: the same job";
  k.restart = 3;
  k.slurm_state = "RUNNING";
  EXPECT_TRUE(slurm_reports_new_job(k, 1500, 0, "RUNNING")) << "a restart count never goes down";
  EXPECT_FALSE(slurm_reports_new_job(KnownJob{}, 1500, 0, "PENDING")) << "never described by slurmctld: adopt it";
  k.slurm_state = "RUNNING";
  EXPECT_FALSE(slurm_reports_new_job(k, 1500, 3, "UNKNOWN")) << "a state that says nothing";
}

// What the cluster showed for a preempted job (the e2e test that caught the
// submit-time rule this replaced): Slurm moved the submit time at the requeue
// and again when the held job was released, at the same restart count.
TEST(Identity, APreemptedRequeuedAndReleasedJobIsTheSameJob) {
  KnownJob k;
  auto seen = [&](std::int64_t submit, std::uint32_t restart, const char* state) {
    const bool fresh = slurm_reports_new_job(k, submit, restart, state);
    k.submit_s = submit;
    k.restart = std::max(k.restart, restart);
    k.slurm_state = state;
    return fresh;
  };
  EXPECT_FALSE(seen(1000, 0, "PENDING"));
  EXPECT_FALSE(seen(1000, 0, "RUNNING"));
  EXPECT_FALSE(seen(1035, 1, "PENDING")) << "requeued by preemption";
  EXPECT_FALSE(seen(1039, 1, "PENDING")) << "released: the submit time moved again";
  EXPECT_FALSE(seen(1039, 1, "RUNNING"));
  EXPECT_FALSE(seen(1039, 1, "COMPLETED"));
  EXPECT_TRUE(seen(2000, 0, "PENDING")) << "then a new job with its id";
}

TEST(Identity, AStartAfterTheEndInAnAttemptTheJobHadIsANewJob) {
  KnownJob k;
  k.restart = 0;
  k.terminal = true;
  k.ended_ns = 100 * kS;
  EXPECT_TRUE(start_means_new_job(k, 130 * kS, 0));
  EXPECT_FALSE(start_means_new_job(k, 90 * kS, 0)) << "a late report of the old job's own start";
  EXPECT_FALSE(start_means_new_job(k, 100 * kS + kS / 2, 0)) << "within the clock skew allowed";
  EXPECT_FALSE(start_means_new_job(k, 130 * kS, 1)) << "the ended job requeued (restart count grew)";
  k.terminal = false;
  EXPECT_FALSE(start_means_new_job(k, 130 * kS, 0)) << "a running job is left to reconciliation";
}

TEST(Identity, NamesAndReferences) {
  EXPECT_EQ(job_key_name(42, 0), "42");
  EXPECT_EQ(job_key_name(42, 2), "42.2");
  EXPECT_EQ(job_key_name(archived_key(42, 0), 0), "42.0");
  EXPECT_EQ(slurm_id_of(archived_key(42, 3)), 42u);
  EXPECT_TRUE(is_archived(archived_key(0xffffffffu, 0)));
  EXPECT_FALSE(is_archived(0xffffffffu));
  auto r = parse_job_ref("1234.2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->job, 1234u);
  EXPECT_EQ(r->incarnation, 2u);
  r = parse_job_ref("4294967295");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->incarnation);
  for (const char* bad : {"", "0", "4294967296", "12.", ".1", "1.2.3", "a", "-1", "12 ", "1.99999999999"})
    EXPECT_FALSE(parse_job_ref(bad)) << bad;
}

// The store: the old job's rows in every table move to its archived key; the
// id starts again empty; both stay reachable.
TEST_F(ModulesTest, RetiringAJobMovesEveryRowOfItAndLeavesTheIdEmpty) {
  run_job(1, {"n1"});
  beat(1, "n1", 2);
  advance(1);
  beat(1, "n1", 3);
  deliver(ev(EventType::job_end, 1, kBatch, "n1", {{"exit_code", 0}}));
  ASSERT_EQ(state(1), "COMPLETED");
  const auto before = store->events(1, 0, 1000, std::nullopt);
  ASSERT_TRUE(before && !before->empty());
  ASSERT_TRUE(store->steps(1) && !store->steps(1)->empty());
  Store::UsageFilter f;
  f.job = 1;
  auto usage_before = store->usage(f, 0, now / kS + 3600, 3600);
  ASSERT_TRUE(usage_before && !usage_before->empty());

  ASSERT_TRUE(core->retire(1, "test", now));
  const JobKey old = archived_key(1, 0);
  EXPECT_EQ(store->events(1, 0, 1000, std::nullopt)->size(), 0u);
  EXPECT_EQ(store->transitions(1)->size(), 0u);
  EXPECT_EQ(store->steps(1)->size(), 0u);
  EXPECT_EQ(store->events(old, 0, 1000, std::nullopt)->size(), before->size());
  EXPECT_FALSE(store->transitions(old)->empty());
  EXPECT_FALSE(store->steps(old)->empty());
  f.job = old;
  EXPECT_EQ(store->usage(f, 0, now / kS + 3600, 3600)->size(), usage_before->size());
  auto row = store->job_row(1);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->incarnation, 1u);
  EXPECT_EQ(row->state, "SUBMITTED");
  EXPECT_EQ(row->uid, static_cast<uid_t>(-1)) << "no owner until the new job's start says";
  EXPECT_EQ(store->job_row(old)->state, "COMPLETED");
  EXPECT_EQ(store->job_row(old)->uid, kUser);

  EXPECT_EQ(store->resolve({1, std::nullopt}), JobKey{1});
  EXPECT_EQ(store->resolve({1, 1u}), JobKey{1});
  EXPECT_EQ(store->resolve({1, 0u}), old);
  EXPECT_FALSE(store->resolve({1, 2u}));
  EXPECT_FALSE(store->resolve({2, std::nullopt}));
  auto jobs = store->jobs(std::nullopt, 10);
  ASSERT_TRUE(jobs && jobs->size() == 2u);
  EXPECT_EQ((*jobs)[0].job, JobKey{1}) << "current jobs first";
  EXPECT_EQ((*jobs)[1].job, old);
}

// slurmctld lists job 1 again with another submit time and no requeue: the
// old job is archived before the new one is applied, and what modules held of
// it (its checkpoint ledger, its outputs) is not the new job's.
TEST_F(ModulesTest, ReconciliationArchivesTheOldJobWhenSlurmListsANewOneUnderItsId) {
  SlurmJob j;
  j.job = 1;
  j.uid = kUser;
  j.state = "RUNNING";
  j.submit_time = now / kS - 10;
  modules.reconcile->apply_jobs({j}, now);
  run_job(1, {"n1"});
  checkpoint(1, file("a.ckpt", "old job's state"), 100);
  advance(0.1);
  ASSERT_EQ(of(1, EventType::checkpoint_verified).size(), 1u);
  deliver(ev(EventType::job_end, 1, kBatch, "n1", {{"exit_code", 0}}));
  j.state = "COMPLETED";
  modules.reconcile->apply_jobs({j}, now);
  EXPECT_EQ(store->known_job(1)->submit_s, j.submit_time);

  advance(60);
  modules.reconcile->apply_jobs({j}, now);  // the same job again: nothing happens
  EXPECT_EQ(core->counters.jobs_retired, 0u);

  SlurmJob n = j;  // slurmctld lost its state; a new job 1
  n.state = "PENDING";
  n.submit_time = now / kS;
  modules.reconcile->apply_jobs({n}, now);
  EXPECT_EQ(core->counters.jobs_retired, 1u);
  EXPECT_EQ(store->job_row(1)->incarnation, 1u);
  EXPECT_EQ(store->job_row(1)->state, "PENDING");
  EXPECT_EQ(store->known_job(1)->submit_s, n.submit_time);
  const JobKey old = archived_key(1, 0);
  EXPECT_EQ(store->job_row(old)->state, "COMPLETED");
  EXPECT_EQ(store->count_events(old, EventType::checkpoint_verified), 1);

  // The new job is requeued: vigild has no checkpoint of its own to offer.
  advance(1);
  run_job(1, {"n1"});
  std::optional<Result<json>> answer;
  core->host.request("restart_from", Caller{0, true}, {{"job", 1u}, {"restart", 1u}},
                     [&](Result<json> r) { answer = std::move(r); });
  advance(0.1);
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(*answer) << answer->error().what();
  EXPECT_TRUE((**answer)["path"].is_null()) << (**answer).dump();
  EXPECT_EQ(of(1, EventType::checkpoint_verified).size(), 0u) << dump(1);
}

// A node reports a batch script starting for an id whose job ended before:
// archived at once, so even the new job's first events are its own.
TEST_F(ModulesTest, AStartAfterTheOldJobEndedIsANewJobFromItsFirstEvent) {
  run_job(5, {"n1"});
  deliver(ev(EventType::job_end, 5, kBatch, "n1", {{"exit_code", 0}}));
  ASSERT_EQ(state(5), "COMPLETED");
  // A late, replayed report of the old job's start changes nothing.
  const auto old_start = of(5, EventType::job_start);
  ASSERT_EQ(old_start.size(), 1u);
  Event replay = old_start[0].event;
  deliver(replay);
  EXPECT_EQ(core->counters.jobs_retired, 0u);
  // ... nor does a start stamped before the end (spooled while the network was cut).
  Event late = ev(EventType::job_start, 5, kBatch, "n2", {{"uid", kUser}, {"options", {{"heartbeat_s", 1}}}});
  late.ts_ns = now - 5 * kS;
  deliver(late);
  EXPECT_EQ(core->counters.jobs_retired, 0u);

  advance(30);
  run_job(5, {"n3"});
  EXPECT_EQ(core->counters.jobs_retired, 1u);
  const JobKey old = archived_key(5, 0);
  const auto mine = store->events(5, 0, 1000, std::nullopt);
  ASSERT_TRUE(mine);
  for (const auto& e : *mine) EXPECT_EQ(e.event.node, "n3") << dump(5);
  EXPECT_EQ(state(5), "RUNNING");
  EXPECT_EQ(store->job_row(old)->state, "COMPLETED");
  EXPECT_EQ(store->count_events(old, EventType::job_start), 2) << "the old job's start and its late report";
}

// An output registered by the old job does not make the new job's output
// with the same name and content a duplicate (whose copy would be deleted).
TEST_F(ModulesTest, TheNewJobsOutputsAreNotTakenForTheOldJobsDuplicates) {
  run_job(3, {"n1"});
  deliver(ev(EventType::output, 3, 0, "n1", {{"path", file("a.dat", "T=1").string()}, {"name", "result"}}));
  advance(0.1);
  ASSERT_EQ(of(3, EventType::output_registered).size(), 1u);
  deliver(ev(EventType::job_end, 3, kBatch, "n1", {{"exit_code", 0}}));
  advance(30);
  run_job(3, {"n1"});
  ASSERT_EQ(core->counters.jobs_retired, 1u);
  const fs::path b = file("b.dat", "T=1");
  deliver(ev(EventType::output, 3, 0, "n1", {{"path", b.string()}, {"name", "result"}}));
  advance(0.1);
  const auto regs = of(3, EventType::output_registered);
  ASSERT_EQ(regs.size(), 1u) << dump(3);
  EXPECT_EQ(regs[0].event.attrs["path"], b.string());
  EXPECT_TRUE(fs::exists(b));
  EXPECT_EQ(core->counters.outputs_duplicate, 0u);
}

// A v3 database (before job keys) opens as v4 with every job the first and
// current one under its id.
TEST_F(ModulesTest, AVersion3DatabaseMigratesKeepingItsJobs) {
  run_job(8, {"n1"});
  deliver(ev(EventType::job_end, 8, kBatch, "n1", {{"exit_code", 0}}));
  const auto n = store->events(8, 0, 1000, std::nullopt)->size();
  stop();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(cfg.database.c_str(), &db), SQLITE_OK);
  for (const char* sql : kUndoSchema6)
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
  for (const char* sql : {"ALTER TABLE jobs DROP COLUMN incarnation", "ALTER TABLE jobs DROP COLUMN submit_s",
                          "UPDATE meta SET value='3' WHERE key='schema_version'"})
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
  sqlite3_close(db);
  start();
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  EXPECT_EQ(store->events(8, 0, 1000, std::nullopt)->size(), n);
  EXPECT_EQ(store->job_row(8)->incarnation, 0u);
  EXPECT_EQ(store->job_row(8)->state, "COMPLETED");
  EXPECT_EQ(store->resolve({8, 0u}), JobKey{8});
}

}  // namespace
}  // namespace vigil::controller
