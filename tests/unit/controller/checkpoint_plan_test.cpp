// checkpoint_plan_test.cpp — checkpoint strategies and long-run protection,
// driven by an explicit clock and cluster view.
#include "checkpoint_plan.hpp"

#include <gtest/gtest.h>

namespace vigil::controller {
namespace {

using K = PlanAction::Kind;

PlanJob running(std::uint32_t id, std::time_t start, std::time_t end, std::vector<std::string> nodes = {"n1"}) {
  PlanJob j;
  j.job = id;
  j.start_time = start;
  j.end_time = end;
  j.nodes = std::move(nodes);
  return j;
}

TEST(CheckpointPlan, AsksOnceBeforeTheTimeLimit) {
  PlanConfig c;
  c.before_end_s = 300;
  CheckpointPlanner p(c);
  const PlanJob j = running(7, 1, 3600);
  EXPECT_TRUE(p.tick(3000, {j}, {}).empty());  // 600 s left
  auto a = p.tick(3301, {j}, {});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, K::checkpoint);
  EXPECT_EQ(a[0].trigger, "time_limit");
  EXPECT_NE(a[0].reason.find("299 s"), std::string::npos) << a[0].reason;
  EXPECT_TRUE(p.tick(3400, {j}, {}).empty());  // once per attempt
  PlanJob again = j;
  again.restart = 1;  // requeued and running again: a new attempt asks again
  EXPECT_EQ(p.tick(3401, {again}, {}).size(), 1u);
}

TEST(CheckpointPlan, AShortJobIsAskedAtHalfItsLimitNotAtItsStart) {
  CheckpointPlanner p(PlanConfig{});
  const PlanJob j = running(1, 1000, 1060);  // one minute, margin 300 s
  EXPECT_TRUE(p.tick(1001, {j}, {}).empty());
  EXPECT_TRUE(p.tick(1029, {j}, {}).empty());
  EXPECT_EQ(p.tick(1030, {j}, {}).size(), 1u);
}

TEST(CheckpointPlan, NoLimitNoAskAndOffMeansOff) {
  PlanConfig c;
  CheckpointPlanner p(c);
  EXPECT_TRUE(p.tick(5000, {running(1, 0, 0)}, {}).empty());
  c.before_end_s = 0;
  CheckpointPlanner off(c);
  EXPECT_TRUE(off.tick(3599, {running(1, 1, 3600)}, {}).empty());
}

TEST(CheckpointPlan, AsksAtPreemptionOncePerNotice) {
  CheckpointPlanner p(PlanConfig{});
  PlanJob j = running(3, 0, 0);
  EXPECT_TRUE(p.tick(10, {j}, {}).empty());
  j.preempt_time = 11;
  auto a = p.tick(12, {j}, {});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].trigger, "preemption");
  EXPECT_TRUE(p.tick(13, {j}, {}).empty());
}

TEST(CheckpointPlan, MaintenanceOnTheJobsNodesBeforeItWouldEnd) {
  PlanConfig c;
  c.before_maintenance_s = 600;
  CheckpointPlanner p(c);
  const PlanJob on_n1 = running(1, 0, 100000, {"n1", "n2"});
  const PlanJob on_n3 = running(2, 0, 100000, {"n3"});
  const PlanJob ends_first = running(3, 0, 5000, {"n1"});
  const Maintenance m{"fw-upgrade", 6000, 9000, {"n2"}};
  EXPECT_TRUE(p.tick(5000, {on_n1, on_n3, ends_first}, {m}).empty());  // 1000 s ahead: not yet
  auto a = p.tick(5500, {on_n1, on_n3, ends_first}, {m});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job, 1u);
  EXPECT_EQ(a[0].trigger, "maintenance");
  EXPECT_NE(a[0].reason.find("fw-upgrade"), std::string::npos);
  EXPECT_TRUE(p.tick(5600, {on_n1, on_n3}, {m}).empty());
  // A reservation on ALL nodes (empty list) covers every job.
  const Maintenance all{"all", 6000, 9000, {}};
  EXPECT_EQ(p.tick(5700, {on_n3}, {all}).size(), 1u);
}

TEST(CheckpointPlan, AProtectedJobIsRequeuedOnlyAfterAFreshVerifiedCheckpoint) {
  PlanConfig c;
  c.protect_wait_s = 120;
  CheckpointPlanner p(c);
  PlanJob j = running(9, 0, 100000, {"n1"});
  j.protect = true;
  const Maintenance m{"m", 1000, 2000, {"n1"}};
  auto a = p.tick(500, {j}, {m});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, K::checkpoint);
  EXPECT_NE(a[0].reason.find("protected"), std::string::npos);
  EXPECT_TRUE(p.tick(510, {j}, {m}).empty());  // waiting for the checkpoint
  j.last_verified = 505;                       // reported after the request, verified
  a = p.tick(520, {j}, {m});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, K::requeue);
  EXPECT_TRUE(p.tick(530, {j}, {m}).empty());  // once
}

TEST(CheckpointPlan, AProtectedJobWithoutAFreshCheckpointIsLeftAlone) {
  PlanConfig c;
  c.protect_wait_s = 60;
  c.fresh_s = 300;
  CheckpointPlanner p(c);
  PlanJob j = running(9, 0, 100000, {"n1"});
  j.protect = true;
  j.last_verified = 100;  // old
  const Maintenance m{"m", 1000, 2000, {"n1"}};
  ASSERT_EQ(p.tick(500, {j}, {m}).size(), 1u);
  auto a = p.tick(560, {j}, {m});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, K::hold);
  EXPECT_NE(a[0].reason.find("no verified checkpoint younger than 300 s"), std::string::npos) << a[0].reason;
  // ... but one still fresh at the deadline will do.
  CheckpointPlanner q(c);
  j.last_verified = 450;
  ASSERT_EQ(q.tick(500, {j}, {m}).size(), 1u);
  a = q.tick(560, {j}, {m});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, K::requeue);
}

TEST(CheckpointPlan, SitePolicyProtectsLongJobsAndUnprotectedJobsAreOnlyCheckpointed) {
  PlanConfig c;
  c.protect_min_time_limit_min = 1440;
  c.protect_wait_s = 10;
  CheckpointPlanner p(c);
  PlanJob long_job = running(1, 0, 200000, {"n1"});
  long_job.time_limit_min = 2880;
  PlanJob short_job = running(2, 0, 200000, {"n1"});
  short_job.time_limit_min = 60;
  EXPECT_TRUE(p.is_protected(long_job));
  EXPECT_FALSE(p.is_protected(short_job));
  const Maintenance m{"m", 1000, 2000, {"n1"}};
  EXPECT_EQ(p.tick(500, {long_job, short_job}, {m}).size(), 2u);
  long_job.last_verified = 505;
  short_job.last_verified = 505;
  auto a = p.tick(520, {long_job, short_job}, {m});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job, 1u);
  EXPECT_EQ(a[0].kind, K::requeue);
}

TEST(CheckpointPlan, AJobThatEndsForgetsItsWait) {
  PlanConfig c;
  c.protect_wait_s = 10;
  CheckpointPlanner p(c);
  PlanJob j = running(4, 0, 100000, {"n1"});
  j.protect = true;
  const Maintenance m{"m", 1000, 2000, {"n1"}};
  ASSERT_EQ(p.tick(500, {j}, {m}).size(), 1u);
  EXPECT_TRUE(p.tick(600, {}, {m}).empty());  // ended meanwhile: nothing to requeue
}

TEST(CheckpointPlan, AProtectedJobIsKeptWithAFreshCheckpoint) {
  PlanConfig c;
  c.fresh_s = 600;
  CheckpointPlanner p(c);
  PlanJob j = running(5, 1000, 0, {"n1"});
  j.protect = true;
  EXPECT_TRUE(p.tick(1500, {j}, {}).empty());  // running 500 s: still fresh enough
  auto a = p.tick(1600, {j}, {});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].trigger, "protection");
  EXPECT_NE(a[0].reason.find("no verified checkpoint in 600 s"), std::string::npos) << a[0].reason;
  EXPECT_TRUE(p.tick(1700, {j}, {}).empty());  // asked; not again before another fresh_s
  j.last_verified = 1650;                      // it answered
  EXPECT_TRUE(p.tick(2200, {j}, {}).empty());
  a = p.tick(2250, {j}, {});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_NE(a[0].reason.find("600 s old"), std::string::npos) << a[0].reason;
  PlanJob plain = running(6, 1000, 0, {"n2"});
  EXPECT_TRUE(p.tick(5000, {plain}, {}).empty()) << "unprotected jobs keep their own cadence";
}

}  // namespace
}  // namespace vigil::controller
