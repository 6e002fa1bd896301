// Plugin options and plugstack arguments: accepted forms, rejections naming the
// option and its accepted form, site minimums.
#include <gtest/gtest.h>

#include <csignal>

#include "options.hpp"

using namespace vigil;
using namespace vigil::spank;

TEST(Options, Durations) {
  EXPECT_EQ(*parse_duration_s("90"), 90);
  EXPECT_EQ(*parse_duration_s("90s"), 90);
  EXPECT_EQ(*parse_duration_s("30m"), 1800);
  EXPECT_EQ(*parse_duration_s("2h"), 7200);
  EXPECT_EQ(*parse_duration_s("1h30m"), 5400);
  EXPECT_EQ(*parse_duration_s("off"), 0);
  for (const char* bad : {"", "m", "5x", "-5", "1h30", "99999999s", "400d"})
    EXPECT_FALSE(parse_duration_s(bad).ok()) << bad;
}

TEST(Options, Signals) {
  EXPECT_EQ(*parse_signal("USR1"), SIGUSR1);
  EXPECT_EQ(*parse_signal("sigusr2"), SIGUSR2);
  EXPECT_EQ(*parse_signal("15"), SIGTERM);
  EXPECT_FALSE(parse_signal("KILL").ok());
  EXPECT_FALSE(parse_signal("9").ok());
  EXPECT_FALSE(parse_signal("65").ok());
}

TEST(Options, RejectionNamesOptionAndForm) {
  SiteConfig site;
  JobOptions o;
  auto s = apply_option(o, "heartbeat", "0", site);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message.rfind("--vigil-heartbeat: invalid value '0'; expected", 0), 0u) << s.error().message;
  s = apply_option(o, "checkpoint", "soon", site);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("--vigil-checkpoint"), std::string::npos);
  EXPECT_NE(s.error().message.find("30m"), std::string::npos);
  EXPECT_FALSE(apply_option(o, "results", "maybe", site).ok());
  EXPECT_FALSE(apply_option(o, "results-dir", "relative/dir", site).ok());
  EXPECT_FALSE(apply_option(o, "results-dir", "/a/../etc", site).ok());
  EXPECT_FALSE(apply_option(o, "retries", "11", site).ok());
  EXPECT_FALSE(apply_option(o, "label", "has space", site).ok());
  EXPECT_FALSE(apply_option(o, "label", std::string(65, 'a').c_str(), site).ok());
}

TEST(Options, SiteMinimumHeartbeat) {
  std::vector<std::string> warnings;
  SiteConfig site = parse_site_args({"min_heartbeat=3"}, warnings);
  EXPECT_TRUE(warnings.empty());
  JobOptions o;
  auto s = apply_option(o, "heartbeat", "2", site);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("site minimum"), std::string::npos);
  EXPECT_TRUE(apply_option(o, "heartbeat", "3", site).ok());
  EXPECT_EQ(o.effective_heartbeat(site), 3);
}

TEST(Options, AcceptsGoodValues) {
  SiteConfig site;
  JobOptions o;
  EXPECT_TRUE(apply_option(o, "checkpoint", "30m", site).ok());
  EXPECT_TRUE(apply_option(o, "checkpoint-signal", "USR2", site).ok());
  EXPECT_TRUE(apply_option(o, "results", "off", site).ok());
  EXPECT_TRUE(apply_option(o, "retries", "5", site).ok());
  EXPECT_TRUE(apply_option(o, "protect", nullptr, site).ok());
  EXPECT_TRUE(apply_option(o, "label", "heat2d/run-7", site).ok());
  EXPECT_TRUE(apply_option(o, "keep-checkpoints", "3", site).ok());
  EXPECT_EQ(o.keep_checkpoints, 3);
  auto bad = apply_option(o, "keep-checkpoints", "-1", site);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("--vigil-keep-checkpoints: invalid value '-1'"), std::string::npos);
  EXPECT_EQ(o.checkpoint_s, 1800);
  EXPECT_EQ(o.checkpoint_signal, SIGUSR2);
  EXPECT_FALSE(o.results);
  EXPECT_EQ(o.retries, 5);
  EXPECT_TRUE(o.protect);
  EXPECT_EQ(o.label, "heat2d/run-7");
  EXPECT_EQ(o.effective_heartbeat(site), 5);
}

TEST(Options, BadPlugstackArgumentsAreWarningsNotFatal) {
  std::vector<std::string> warnings;
  SiteConfig s = parse_site_args({"endpoint=http://x", "min_heartbeat=zero", "bogus=1", "noequals",
                                  "spool_dir=/var/spool/v", "default_heartbeat=10"},
                                 warnings);
  EXPECT_EQ(warnings.size(), 4u);
  EXPECT_EQ(s.endpoint, "tcp://127.0.0.1:7810");
  EXPECT_EQ(s.min_heartbeat_s, 1);
  EXPECT_EQ(s.spool_dir, "/var/spool/v");
  EXPECT_EQ(s.default_heartbeat_s, 10);
}
