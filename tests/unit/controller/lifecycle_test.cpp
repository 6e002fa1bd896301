// The job state machine: the normal path, trouble and recovery, terminal states.
#include <gtest/gtest.h>

#include "lifecycle.hpp"

using namespace vigil::controller;
using K = LifecycleInput::Kind;
using S = JobState;

namespace {
S run(S s, std::initializer_list<K> inputs) {
  for (K k : inputs)
    if (auto t = next_state(s, {k, ""})) s = t->to;
  return s;
}
}  // namespace

TEST(Lifecycle, NormalPath) {
  EXPECT_EQ(run(S::submitted, {K::slurm_pending, K::job_started, K::task_started, K::ended_ok}), S::completed);
  auto t = next_state(S::pending, {K::job_started, "on n1"});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, S::starting);
  EXPECT_EQ(t->reason, "batch step started: on n1");
}

TEST(Lifecycle, TroubleAndAllClear) {
  EXPECT_EQ(run(S::running, {K::trouble}), S::degraded);
  EXPECT_EQ(run(S::running, {K::trouble, K::all_clear}), S::running);
  EXPECT_EQ(run(S::degraded, {K::ended_failed}), S::failed);
}

TEST(Lifecycle, TerminalIsFinalExceptRequeue) {
  for (S end : {S::completed, S::failed, S::cancelled, S::stopped}) {
    for (K k : {K::task_started, K::trouble, K::all_clear, K::slurm_running, K::ended_ok, K::ended_failed})
      EXPECT_FALSE(next_state(end, {k, ""})) << job_state_name(end);
    EXPECT_EQ(next_state(end, {K::requeued, ""})->to, S::recovering);
  }
  EXPECT_EQ(run(S::failed, {K::requeued, K::job_started, K::task_started}), S::running);
}

TEST(Lifecycle, NoSelfTransitionsAndNamesRoundTrip) {
  EXPECT_FALSE(next_state(S::running, {K::task_started, ""}));
  for (int i = 0; i <= static_cast<int>(S::stopped); ++i)
    EXPECT_EQ(job_state_from_name(job_state_name(static_cast<S>(i))), static_cast<S>(i));
}

TEST(Lifecycle, SlurmHasTheLastWordOnHowAJobEnded) {
  // The batch script died of SIGTERM (nodes: FAILED); slurmctld says CANCELLED.
  auto t = next_state(S::failed, {K::cancelled, "slurmctld: CANCELLED", true});
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, S::cancelled);
  EXPECT_FALSE(next_state(S::failed, {K::cancelled, "from a node", false}));
  EXPECT_FALSE(next_state(S::stopped, {K::cancelled, "slurmctld: CANCELLED", true}));  // Vigil stopped it
  EXPECT_FALSE(next_state(S::cancelled, {K::ended_failed, "slurmctld: FAILED", true}));
}
