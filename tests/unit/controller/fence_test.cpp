// fence_test.cpp — a superseded attempt's late reports (ADR 0022): refused
// after its last sign of life, kept before it, the next attempt untouched, and
// the fence remembered across a restart of vigild.
#include "modules/recovery_module.hpp"
#include "modules_fixture.hpp"

namespace vigil::controller::modtest {
namespace {

// n2 (the batch host, where the task that reports runs) falls silent; n1 keeps
// beating; vigild requeues. Returns the fence the recovery decision carries.
std::int64_t lose_batch_host(ModulesTest& t, std::uint32_t job) {
  t.run_job(job, {"n2", "n1"});
  t.beat(job, "n2");
  for (int i = 0; i < 3; ++i) {
    t.advance(1);
    t.beat(job, "n1", i);
  }
  return t.of(job, EventType::recovery).at(0).event.attrs.at("fence_after_ns").get<std::int64_t>();
}

// As the intake does, but the refusal is the answer.
std::optional<Error> offer(ModulesTest& t, Event e) {
  if (e.id == EventId{}) e.id = new_event_id();
  return t.core->host.validate(e, 0, t.now);
}

Event report(ModulesTest& t, EventType type, std::uint32_t job, std::int64_t ts, std::uint32_t restart) {
  json a = type == EventType::result       ? json{{"name", "x"}, {"value", 1.0}, {"step", 10}}
           : type == EventType::checkpoint ? json{{"path", "/tmp/x.ckpt"}, {"step", 10}}
                                           : json{{"path", "/tmp/x.out"}, {"name", "x"}};
  Event e = t.ev(type, job, 0, "n2", a, restart);
  e.ts_ns = ts;
  return e;
}

TEST_F(ModulesTest, ASupersededAttemptsReportsAfterItsLastSignOfLifeAreRefused) {
  const std::int64_t last = now;  // n2's last heartbeat
  const std::int64_t fence = lose_batch_host(*this, 7);
  EXPECT_EQ(fence, last) << "the lost node's newest event, in its own clock" << dump(7);
  ASSERT_EQ(store->fence(7)->restart, 0u);
  for (EventType type : {EventType::result, EventType::checkpoint, EventType::output}) {
    SCOPED_TRACE(event_type_name(type));
    // Emitted before the node went silent, delivered late (a relay's spool): kept.
    EXPECT_FALSE(offer(*this, report(*this, type, 7, last - kS, 0)));
    EXPECT_FALSE(offer(*this, report(*this, type, 7, last, 0)));
    // Emitted after: the attempt was already given up on.
    auto refused = offer(*this, report(*this, type, 7, last + 1, 0));
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->code, Errc::superseded);
    EXPECT_NE(refused->message.find("attempt 0 was superseded"), std::string::npos) << refused->message;
    // The next attempt is not fenced, whatever its clock says.
    EXPECT_FALSE(offer(*this, report(*this, type, 7, last + 1, 1)));
    EXPECT_FALSE(offer(*this, report(*this, type, 7, last - 10 * kS, 1)));
  }
  // Lifecycle events of the old attempt still count (its end is stale, not refused).
  Event end = ev(EventType::job_end, 7, kBatch, "n2", {{"exit_code", 15}});
  end.ts_ns = last + 5 * kS;
  EXPECT_FALSE(offer(*this, end));
  // Another job is not touched.
  EXPECT_FALSE(offer(*this, report(*this, EventType::result, 8, last + kS, 0)));
}

TEST_F(ModulesTest, AFencedAttemptIsNotedOnceOnTheTimeline) {
  const std::int64_t fence = lose_batch_host(*this, 7);
  for (int i = 1; i <= 3; ++i) EXPECT_TRUE(offer(*this, report(*this, EventType::result, 7, fence + i * kS, 0)));
  EXPECT_TRUE(offer(*this, report(*this, EventType::checkpoint, 7, fence + 4 * kS, 0)));
  advance(0.1);
  advance(0.1);
  EXPECT_TRUE(offer(*this, report(*this, EventType::result, 7, fence + 5 * kS, 0)));
  advance(0.1);
  std::vector<json> fenced;
  for (const auto& r : of(7, EventType::recovery))
    if (r.event.attrs["action"] == "fenced") fenced.push_back(r.event.attrs);
  ASSERT_EQ(fenced.size(), 1u) << dump(7);
  EXPECT_EQ(fenced[0]["restart"], 0);
  EXPECT_EQ(fenced[0]["first_seen"], "result");
  EXPECT_EQ(fenced[0]["node"], "n2");
  EXPECT_EQ(fenced[0]["emitted_ns"], fence + kS);
}

TEST_F(ModulesTest, TheFenceSurvivesARestartOfVigild) {
  const std::int64_t fence = lose_batch_host(*this, 7);
  stop();
  start();
  EXPECT_TRUE(offer(*this, report(*this, EventType::checkpoint, 7, fence + kS, 0)));
  EXPECT_FALSE(offer(*this, report(*this, EventType::checkpoint, 7, fence - kS, 0)));
}

TEST_F(ModulesTest, APlannedRequeueIsNotFenced) {
  // Maintenance: the attempt is asked to checkpoint and ends cleanly; what it
  // reports on its way out is what the next attempt resumes from.
  run_job(9, {"n1"});
  RecoveryModule* recovery = nullptr;
  for (const auto& m : modules.all)
    if (auto* r = dynamic_cast<RecoveryModule*>(m.get())) recovery = r;
  ASSERT_NE(recovery, nullptr);
  recovery->planned_requeue(9, 0, "maintenance", "test: a reservation starts", now);
  ASSERT_EQ(state(9), "RECOVERING");
  EXPECT_FALSE(store->fence(9));
  EXPECT_FALSE(offer(*this, report(*this, EventType::checkpoint, 9, now + 60 * kS, 0)));
}

TEST_F(ModulesTest, ANewJobUnderAReusedIdIsNotFenced) {
  const std::int64_t fence = lose_batch_host(*this, 7);
  ASSERT_TRUE(core->retire(7, "test: Slurm reused the id", now));
  EXPECT_FALSE(store->fence(7)) << "the fence moved with the old job's row";
  EXPECT_FALSE(offer(*this, report(*this, EventType::result, 7, fence + kS, 0)));
}

}  // namespace
}  // namespace vigil::controller::modtest

namespace vigil::controller::modtest {
namespace {

// The superseded attempt thaws: its heartbeat (restart 0, after the fence)
// is noted; its srun then kills the new attempt's step 0 (the same step id),
// and the new attempt's batch script fails. That failure is the old attempt's
// doing: the job gets another attempt, from its newest verified checkpoint.
TEST_F(ModulesTest, ASuccessorKilledAsItsSupersededAttemptComesBackIsRetried) {
  const std::int64_t fence = lose_batch_host(*this, 7);
  run_for(5.1, 7, {"n1"});
  ASSERT_TRUE(slurm.saw("requeue 7"));
  run_job(7, {"n1"}, json::object(), 1);
  ASSERT_EQ(state(7), "RUNNING");
  Event thawed = ev(EventType::heartbeat, 7, 0, "n2", {{"interval_s", 1}}, 0);
  thawed.ts_ns = fence + 9 * kS;
  deliver(thawed);
  advance(0.1);
  deliver(ev(EventType::job_end, 7, kBatch, "n1", {{"exit_code", 137}}, 1));
  EXPECT_EQ(state(7), "FAILED");
  advance(0.1);
  EXPECT_EQ(state(7), "RECOVERING") << dump(7);
  std::vector<json> decisions;
  for (const auto& r : of(7, EventType::recovery))
    if (r.event.attrs["action"] == "requeue") decisions.push_back(r.event.attrs);
  ASSERT_EQ(decisions.size(), 2u) << dump(7);
  EXPECT_EQ(decisions[1]["restart"], 1);
  EXPECT_NE(decisions[1]["reason"].get<std::string>().find("superseded attempt came back"), std::string::npos)
      << decisions[1];
  // Slurm's view of the killed attempt, FAILED, arrives after the decision:
  // stale, the job stays RECOVERING (else the next attempt's start would look
  // like a new job under a reused id).
  SlurmJob failed;
  failed.job = 7;
  failed.state = "FAILED";
  failed.restart = 1;
  modules.reconcile->apply_jobs({failed}, now);
  EXPECT_EQ(state(7), "RECOVERING") << dump(7);
  const auto calls = std::count(slurm.calls.begin(), slurm.calls.end(), "requeue 7");
  deliver(ev(EventType::step_end, 7, 0, "n1", {}, 1));  // attempt 1's step 0 ended with it
  run_for(decisions[1]["delay_s"].get<double>() + 0.1, 7, {});
  EXPECT_EQ(std::count(slurm.calls.begin(), slurm.calls.end(), "requeue 7"), calls + 1);
}

// Without the superseded attempt coming back, a successor's failure is the
// job's own: no retry.
TEST_F(ModulesTest, ASuccessorsOwnFailureIsNotRetried) {
  lose_batch_host(*this, 7);
  run_for(5.1, 7, {"n1"});
  run_job(7, {"n1"}, json::object(), 1);
  deliver(ev(EventType::job_end, 7, kBatch, "n1", {{"exit_code", 1}}, 1));
  deliver(ev(EventType::step_end, 7, 0, "n1", {}, 1));
  advance(0.1);
  advance(61);
  EXPECT_EQ(state(7), "FAILED") << dump(7);
}

}  // namespace
}  // namespace vigil::controller::modtest
