// rules_test.cpp — the early-signal rule grammar and its evaluation.
#include "vigil/rules.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace vigil {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;

TEST(Rules, ParsesEveryForm) {
  auto r = parse_rules("nan@stop,residual>1e3:3@stop,relax/energy<-2.5,stall=10m");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].kind, Rule::Kind::nonfinite);
  EXPECT_EQ((*r)[0].action, Rule::Action::stop);
  EXPECT_EQ((*r)[1].kind, Rule::Kind::above);
  EXPECT_EQ((*r)[1].metric, "residual");
  EXPECT_DOUBLE_EQ((*r)[1].threshold, 1e3);
  EXPECT_EQ((*r)[1].consecutive, 3);
  EXPECT_EQ((*r)[2].stage, "relax");
  EXPECT_EQ((*r)[2].kind, Rule::Kind::below);
  EXPECT_EQ((*r)[2].action, Rule::Action::alert);
  EXPECT_EQ((*r)[3].stall_ns, 600 * kSec);
}

TEST(Rules, RejectsWithAReason) {
  for (const char* bad : {"", "nan@kill", "x>", "x>abc", "x>1:0", "x>1:y", "a b>1", "stall=", "stall=0", "bogus",
                          "x>1,,y<2", "x>inf"}) {
    auto r = parse_rules(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
  std::string many;
  for (int i = 0; i < 17; ++i) many += (i ? ",x" : "x") + std::to_string(i) + ">1";
  EXPECT_FALSE(parse_rules(many));
}

TEST(Rules, NanFiresOnceWithTheValue) {
  RuleWatch w(*parse_rules("nan@stop"), 0);
  double ok = 1.0, nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(w.observe("main", "energy", &ok, 1, 1, kSec).empty());
  auto f = w.observe("main", "energy", &nan, 1, 2, 2 * kSec);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_TRUE(std::isnan(f[0].value));
  EXPECT_EQ(f[0].step, 2);
  EXPECT_EQ(f[0].action, Rule::Action::stop);
  EXPECT_NE(f[0].why.find("main/energy"), std::string::npos);
  EXPECT_TRUE(w.observe("main", "energy", &nan, 1, 3, 3 * kSec).empty()) << "latched";
}

TEST(Rules, NanInsideAnArrayNamesTheElement) {
  RuleWatch w(*parse_rules("nan"), 0);
  double field[4] = {1, 2, std::numeric_limits<double>::infinity(), 4};
  auto f = w.observe("main", "temperature", field, 4, 7, kSec);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].why.find("element 2"), std::string::npos);
}

TEST(Rules, ThresholdNeedsKConsecutiveValues) {
  RuleWatch w(*parse_rules("residual>10:3"), 0);
  auto feed = [&](double v, std::int64_t step) { return w.observe("main", "residual", &v, 1, step, step * kSec); };
  EXPECT_TRUE(feed(11, 1).empty());
  EXPECT_TRUE(feed(12, 2).empty());
  EXPECT_TRUE(feed(5, 3).empty()) << "streak broken";
  EXPECT_TRUE(feed(11, 4).empty());
  EXPECT_TRUE(feed(11, 5).empty());
  auto f = feed(13, 6);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_DOUBLE_EQ(f[0].value, 13);
  double other = 100;
  EXPECT_TRUE(w.observe("main", "energy", &other, 1, 7, 7 * kSec).empty()) << "other metrics do not count";
}

TEST(Rules, StageFilterAndBelow) {
  RuleWatch w(*parse_rules("relax/energy<0"), 0);
  double v = -1;
  EXPECT_TRUE(w.observe("main", "energy", &v, 1, 1, kSec).empty());
  EXPECT_EQ(w.observe("relax", "energy", &v, 1, 1, kSec).size(), 1u);
}

TEST(Rules, StallFiresAfterSilenceOnly) {
  RuleWatch w(*parse_rules("stall=30s@stop"), 0);
  EXPECT_TRUE(w.tick(29 * kSec).empty());
  double v = 1;
  w.observe("main", "x", &v, 1, 1, 29 * kSec);
  EXPECT_TRUE(w.tick(58 * kSec).empty());
  auto f = w.tick(60 * kSec);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].action, Rule::Action::stop);
  EXPECT_TRUE(w.tick(120 * kSec).empty());
}

}  // namespace
}  // namespace vigil
