// recovery_test.cpp — the retry-or-fail policy.
#include "recovery.hpp"

#include <gtest/gtest.h>

namespace vigil::controller {
namespace {

using A = RecoveryDecision::Action;

TEST(Recovery, RequeuesWithExponentialBackoffUntilTheBudgetIsSpent) {
  RecoveryPolicy p;
  RecoveryInput in;
  in.node = "n2";
  in.has_checkpoint = true;
  double delays[3];
  for (std::uint32_t restart = 0; restart < 3; ++restart) {
    in.restart = restart;
    auto d = decide_recovery(p, in);
    ASSERT_EQ(d.action, A::requeue) << restart;
    EXPECT_EQ(d.attempt, static_cast<int>(restart) + 1);
    delays[restart] = d.delay_s;
    EXPECT_NE(d.reason.find("excluding n2"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("verified checkpoint"), std::string::npos);
  }
  EXPECT_DOUBLE_EQ(delays[0], 1.0);
  EXPECT_DOUBLE_EQ(delays[1], 2.0);
  EXPECT_DOUBLE_EQ(delays[2], 4.0);
  in.restart = 3;
  auto d = decide_recovery(p, in);
  EXPECT_EQ(d.action, A::fail);
  EXPECT_NE(d.reason.find("retry budget of 3 exhausted"), std::string::npos) << d.reason;
}

TEST(Recovery, TheJobsOwnBudgetWinsAndZeroMeansNoRetry) {
  RecoveryPolicy p;
  RecoveryInput in;
  in.job_retries = 0;
  EXPECT_EQ(decide_recovery(p, in).action, A::fail);
  in.job_retries = 5;
  in.restart = 4;
  EXPECT_EQ(decide_recovery(p, in).action, A::requeue);
}

TEST(Recovery, BackoffIsCapped) {
  RecoveryPolicy p;
  p.backoff_max_s = 10;
  RecoveryInput in;
  in.job_retries = 10;
  in.restart = 8;
  EXPECT_DOUBLE_EQ(decide_recovery(p, in).delay_s, 10.0);
}

TEST(Recovery, OneDecisionPerAttemptEvenWhenSeveralNodesFail) {
  RecoveryPolicy p;
  RecoveryInput in;
  in.restart = 1;
  in.decided_for_restart = 1;
  EXPECT_EQ(decide_recovery(p, in).action, A::none);
  in.restart = 2;  // the next attempt failed too: decide again
  EXPECT_EQ(decide_recovery(p, in).action, A::requeue);
}

TEST(Recovery, WithoutACheckpointItSaysSo) {
  RecoveryInput in;
  auto d = decide_recovery({}, in);
  EXPECT_NE(d.reason.find("from the start"), std::string::npos);
}

TEST(Recovery, PlannedRequeuesDoNotSpendTheBudget) {
  RecoveryPolicy p;
  RecoveryInput in;
  in.job_retries = 1;
  in.restart = 2;            // two clean requeues before maintenance, then a failure
  in.planned_requeues = 2;
  auto d = decide_recovery(p, in);
  EXPECT_EQ(d.action, A::requeue) << d.reason;
  in.restart = 3;            // the retry failed too: budget of 1 spent
  EXPECT_EQ(decide_recovery(p, in).action, A::fail);
}

}  // namespace
}  // namespace vigil::controller
