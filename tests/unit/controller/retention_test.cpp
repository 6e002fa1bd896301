// retention_test.cpp — which verified checkpoints retention and budgets delete.
#include "retention.hpp"

#include <gtest/gtest.h>

namespace vigil::controller {
namespace {

CheckpointEntry ck(const std::string& path, std::uint64_t bytes, std::int64_t t) {
  CheckpointEntry c;
  c.path = path;
  c.sha256 = "sha-" + path + "-" + std::to_string(t);
  c.bytes = bytes;
  c.reported_ns = t;
  c.step = t;
  return c;
}

std::vector<std::string> paths(const RetentionPlan& p) {
  std::vector<std::string> out;
  for (const Prune& x : p.prune) out.push_back(x.entry.path);
  return out;
}

TEST(Retention, KeepsTheNewestKOfEachJob) {
  RetentionConfig c;
  c.keep = 2;
  auto plan = plan_retention(c, {{1, -1, {ck("/a1", 10, 1), ck("/a2", 10, 2), ck("/a3", 10, 3), ck("/a4", 10, 4)}},
                                 {2, -1, {ck("/b1", 10, 5)}}});
  EXPECT_EQ(paths(plan), (std::vector<std::string>{"/a1", "/a2"}));
  for (const Prune& p : plan.prune) {
    EXPECT_TRUE(p.delete_file);
    EXPECT_NE(p.reason.find("newest 2"), std::string::npos);
  }
  EXPECT_EQ(plan.kept_bytes, 30u);
}

TEST(Retention, ZeroKeepsAllAndTheJobsOwnSettingWins) {
  RetentionConfig c;
  EXPECT_TRUE(plan_retention(c, {{1, -1, {ck("/a1", 1, 1), ck("/a2", 1, 2)}}}).prune.empty());
  auto plan = plan_retention(c, {{1, 1, {ck("/a1", 1, 1), ck("/a2", 1, 2)}}});
  EXPECT_EQ(paths(plan), (std::vector<std::string>{"/a1"}));
}

TEST(Retention, BudgetPrunesOldestFirstAcrossJobsButNeverANewest) {
  RetentionConfig c;
  c.user_budget_bytes = 250;
  // Job 1: 100@1, 100@3, 100@5 (newest); job 2: 100@2, 100@4 (newest). 500 bytes.
  auto plan = plan_retention(c, {{1, -1, {ck("/a1", 100, 1), ck("/a3", 100, 3), ck("/a5", 100, 5)}},
                                 {2, -1, {ck("/b2", 100, 2), ck("/b4", 100, 4)}}});
  EXPECT_EQ(paths(plan), (std::vector<std::string>{"/a1", "/b2", "/a3"}));
  EXPECT_EQ(plan.kept_bytes, 200u);
  EXPECT_FALSE(plan.over_budget);
  // A budget smaller than the newest ones: those stay, and the plan says so.
  c.user_budget_bytes = 50;
  plan = plan_retention(c, {{1, -1, {ck("/a1", 100, 1), ck("/a5", 100, 5)}}, {2, -1, {ck("/b4", 100, 4)}}});
  EXPECT_EQ(paths(plan), (std::vector<std::string>{"/a1"}));
  EXPECT_TRUE(plan.over_budget);
}

TEST(Retention, AFileANewerCheckpointStillNamesIsForgottenNotDeleted) {
  RetentionConfig c;
  c.keep = 1;
  // The simulation overwrites one file: three ledger entries, one path.
  auto plan = plan_retention(c, {{1, -1, {ck("/same", 10, 1), ck("/same", 10, 2), ck("/same", 10, 3)}}});
  ASSERT_EQ(plan.prune.size(), 2u);
  for (const Prune& p : plan.prune) {
    EXPECT_FALSE(p.delete_file);
    EXPECT_NE(p.reason.find("same path"), std::string::npos);
  }
}

}  // namespace
}  // namespace vigil::controller
