// HeartbeatMonitor on a virtual clock: step silence, node loss, recovery.
#include <gtest/gtest.h>

#include "heartbeat_monitor.hpp"

using namespace vigil::controller;
using Kind = Detection::Kind;

namespace {
constexpr std::int64_t kS = 1'000'000'000LL;
StepKey step(std::uint32_t job, std::uint32_t s, const char* node) { return {job, s, node}; }
}  // namespace

TEST(HeartbeatMonitor, NodeLostAfterTwoMissedIntervals) {
  HeartbeatMonitor m;
  m.alive(step(1, 0, "n1"), 5, 0);
  m.alive(step(1, 0, "n2"), 5, 0);
  for (std::int64_t t = 5 * kS; t <= 20 * kS; t += 5 * kS) m.alive(step(1, 0, "n1"), 5, t);  // n1 keeps talking
  EXPECT_TRUE(m.tick(9 * kS).empty());  // n2 silent 9 s < 2 x 5 s
  auto d = m.tick(10 * kS);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].kind, Kind::node_lost);
  EXPECT_EQ(d[0].node, "n2");
  EXPECT_EQ(d[0].silent_since_ns, 0);
  EXPECT_TRUE(m.tick(11 * kS).empty());  // reported once
}

TEST(HeartbeatMonitor, OneHungStepIsNotANodeLoss) {
  HeartbeatMonitor m;
  m.alive(step(1, 0, "n1"), 1, 0);
  m.alive(step(2, 0, "n1"), 1, 0);
  m.alive(step(2, 0, "n1"), 1, 1 * kS);
  m.alive(step(2, 0, "n1"), 1, 2 * kS);
  auto d = m.tick(2 * kS);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].kind, Kind::step_silent);
  EXPECT_EQ(d[0].steps, std::vector<StepKey>({step(1, 0, "n1")}));
}

TEST(HeartbeatMonitor, RecoveryAndEndedSteps) {
  HeartbeatMonitor m;
  m.alive(step(1, 0, "n1"), 1, 0);
  ASSERT_EQ(m.tick(3 * kS).at(0).kind, Kind::node_lost);
  m.alive(step(1, 0, "n1"), 1, 3 * kS + 1);
  auto d = m.tick(3 * kS + 2);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].kind, Kind::recovered);
  m.ended(step(1, 0, "n1"));
  EXPECT_TRUE(m.tick(100 * kS).empty());  // an ended step is never "lost"
  EXPECT_EQ(m.watched(), 0u);
}

TEST(HeartbeatMonitor, PerStepIntervals) {
  HeartbeatMonitor m;
  m.alive(step(1, 0, "n1"), 1, 0);   // 1 s heartbeats: lost at 2 s
  m.alive(step(2, 0, "n2"), 30, 0);  // 30 s heartbeats: fine until 60 s
  auto d = m.tick(2 * kS);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].node, "n1");
  EXPECT_TRUE(m.tick(59 * kS).empty());
  EXPECT_EQ(m.tick(60 * kS).at(0).node, "n2");
}
