// Config: defaults, strict keys, value validation.
#include <gtest/gtest.h>

#include "config.hpp"

using namespace vigil::controller;

TEST(Config, EmptyIsDefaults) {
  auto c = parse_config("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->listen, "tcp://127.0.0.1:7810");
}

TEST(Config, ParsesKnownKeys) {
  auto c = parse_config("listen: tcp://0.0.0.0:9000\ndatabase: /tmp/x.db\nlog_json: true\nsession_ttl_s: 120\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->listen, "tcp://0.0.0.0:9000");
  EXPECT_TRUE(c->log_json);
  EXPECT_EQ(c->session_ttl_s, 120);
}

TEST(Config, UnknownKeyIsAnError) {
  auto c = parse_config("listen: tcp://127.0.0.1:1\nlisten_port: 5\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("unknown key 'listen_port'"), std::string::npos);
}

TEST(Config, BadValuesAreErrors) {
  EXPECT_FALSE(parse_config("listen: http://x\n").ok());
  EXPECT_FALSE(parse_config("log_level: loud\n").ok());
  EXPECT_FALSE(parse_config("session_ttl_s: 5\n").ok());
  EXPECT_FALSE(parse_config("session_ttl_s: many\n").ok());
  EXPECT_FALSE(parse_config("[1, 2]\n").ok());
  EXPECT_FALSE(parse_config("listen: [unclosed\n").ok());
}

TEST(Config, RetentionSettings) {
  auto c = parse_config("timeline_keep_days: 365\nresults_replay_h: 2\nusage_minute_days: 7\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->timeline_keep_days, 365);
  EXPECT_EQ(parse_config("")->timeline_keep_days, 90);
  EXPECT_EQ(parse_config("timeline_keep_days: 0\n")->timeline_keep_days, 0);  // forever
  auto bad = parse_config("timeline_keep_days: -1\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("timeline_keep_days must be in [0, 36500]"), std::string::npos);
  EXPECT_FALSE(parse_config("timeline_keep_days: soon\n").ok());
}
