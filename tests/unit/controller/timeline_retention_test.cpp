// timeline_retention_test.cpp — finished jobs' timelines leave the store after
// timeline_keep_days; what accounting needs stays (ADR 0020).
#include "modules_fixture.hpp"
#include "queries.hpp"

namespace vigil::controller {
namespace {
using namespace vigil::controller::modtest;

constexpr std::int64_t kDay = 86400 * kS;

struct TimelineRetentionTest : ModulesTest {
  std::size_t events_of(std::uint32_t job) {
    auto r = store->events(job, 0, 100000, std::nullopt);
    return r ? r->size() : 0;
  }
  void finish(std::uint32_t job) {
    deliver(ev(EventType::step_end, job, 0, "n1", {{"exit_code", 0}}));
    deliver(ev(EventType::job_end, job, kBatch, "n1", {{"exit_code", 0}}));
  }
};

TEST_F(TimelineRetentionTest, AFinishedJobsTimelineGoesAfterTheKeepDaysAndItsAccountingStays) {
  cfg.timeline_keep_days = 30;
  cfg.recovery = false;  // job 61 falls silent over the month: it stays, not requeued
  stop();
  start();
  run_job(60, {"n1"});  // ends, then is forgotten
  for (int i = 1; i <= 5; ++i) {
    advance(1);
    beat(60, "n1", i);
  }
  finish(60);
  run_job(61, {"n1"});  // still running: kept, however old
  advance(1);
  beat(61, "n1", 1);
  ASSERT_EQ(state(60), "COMPLETED");
  const std::size_t before = events_of(60);
  ASSERT_GT(before, 3u);
  Store::UsageFilter f;
  f.job = 60;
  auto u0 = store->usage(f, 0, now / kS + 60, 86400);
  ASSERT_TRUE(u0 && !u0->empty());
  const double cpu_before = (*u0)[0].cpu_hours;

  now += 29 * kDay;  // not yet
  advance(3600);
  EXPECT_EQ(events_of(60), before);
  now += 2 * kDay;
  advance(3600);
  EXPECT_EQ(events_of(60), 0u) << dump(60);
  auto steps = store->steps(60);
  ASSERT_TRUE(steps);
  EXPECT_TRUE(steps->empty());
  auto row = store->job_row(60);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state, "COMPLETED");
  EXPECT_GT(row->timeline_forgotten_ns, 0);
  EXPECT_FALSE(store->transitions(60)->empty()) << "its state changes stay";
  auto u1 = store->usage(f, 0, now / kS, 86400 * 60);
  ASSERT_TRUE(u1 && !u1->empty());
  double cpu_after = 0;
  for (auto& p : *u1) cpu_after += p.cpu_hours;
  EXPECT_NEAR(cpu_after, cpu_before, 1e-12) << "usage is accounting: it stays";
  EXPECT_EQ(core->counters.timelines_forgotten.load(), 1u);
  EXPECT_EQ(core->counters.timeline_events_deleted.load(), before);
  auto shown = query_job(*store, Caller{0, true}, 60, 100);
  ASSERT_TRUE(shown);
  EXPECT_EQ((*shown)["timeline_forgotten_ns"], row->timeline_forgotten_ns);
  EXPECT_TRUE((*shown)["timeline"].empty());
  EXPECT_NE(state(61), "COMPLETED");  // not ended (silent: DEGRADED), however old
  EXPECT_GT(events_of(61), 0u);
  // Sweeps are hourly: a second job ending now goes 30 days on, not before.
  finish(61);
  now += 31 * kDay;
  advance(3600);
  EXPECT_EQ(events_of(61), 0u);
  EXPECT_EQ(core->counters.timelines_forgotten.load(), 2u);
}

TEST_F(TimelineRetentionTest, ResultsNotYetInTheirDumpKeepTheJobAndZeroKeepsEverything) {
  run_job(62, {"n1"});
  deliver(ev(EventType::result, 62, 0, "n1",
             {{"kind", "scalar"}, {"name", "e"}, {"units", "1"}, {"step", 1}, {"sim_t", 0.0}, {"v", 1.0}}));
  finish(62);
  ASSERT_EQ(state(62), "COMPLETED");
  ASSERT_GT(store->job_row(62)->result_seq, store->job_row(62)->dump_seq);
  now += 400 * kDay;
  advance(3600);
  EXPECT_GT(events_of(62), 0u) << "its value is only in the store";
  // The dump took it: now the timeline may go.
  ASSERT_TRUE(store->begin());
  ASSERT_TRUE(store->mark_dumped({62, 0, 0, store->job_row(62)->result_seq}));
  ASSERT_TRUE(store->commit());
  cfg.timeline_keep_days = 0;  // ... unless the site keeps timelines forever
  stop();
  start();
  now += kDay;
  advance(3600);
  EXPECT_GT(events_of(62), 0u);
  cfg.timeline_keep_days = 90;
  stop();
  start();
  advance(3600);
  EXPECT_EQ(events_of(62), 0u);
}

// A job with more events than one sweep deletes is finished over several
// sweeps, each bounded.
TEST_F(TimelineRetentionTest, ABigTimelineGoesInBoundedSweeps) {
  run_job(63, {"n1"});
  finish(63);
  const std::size_t n = events_of(63);
  ASSERT_GE(n, 4u);
  ASSERT_TRUE(store->begin());
  bool done = true;
  auto r = store->forget_timeline(63, now, 2, done);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 2);
  EXPECT_FALSE(done);
  EXPECT_EQ(store->job_row(63)->timeline_forgotten_ns, 0);
  r = store->forget_timeline(63, now, 1000, done);
  ASSERT_TRUE(r);
  EXPECT_EQ(static_cast<std::size_t>(*r), n - 2);
  EXPECT_TRUE(done);
  ASSERT_TRUE(store->commit());
  EXPECT_EQ(store->job_row(63)->timeline_forgotten_ns, now);
  auto todo = store->jobs_to_forget(now + 1, 10);
  ASSERT_TRUE(todo);
  EXPECT_TRUE(todo->empty()) << "forgotten once";
}

}  // namespace
}  // namespace vigil::controller
