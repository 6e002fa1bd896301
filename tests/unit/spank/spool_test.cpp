// spool_test.cpp — the node-local spool: order, incremental reads (the
// relay's), torn tails, rotation of a long step's file, and the locks that say
// whose a file is.
#include "spool.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace vigil::spank {
namespace {

namespace fs = std::filesystem;

Event ev(std::uint32_t job, int i) {
  Event e;
  e.id = new_event_id();
  e.type = EventType::heartbeat;
  e.ts_ns = 1000 + i;
  e.job = job;
  e.step = 0;
  e.node = "n1";
  e.attrs = {{"i", i}, {"pad", std::string(200, 'x')}};
  return e;
}

struct SpoolTest : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    char tmpl[] = "/tmp/vigil-spool-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { fs::remove_all(dir); }
};

TEST_F(SpoolTest, AReaderFollowsAGrowingFileFromWhereItStopped) {
  Spool s(dir, "7.0.0.1.spool", 64u << 20);
  ASSERT_TRUE(s.append({ev(7, 0), ev(7, 1)}).ok());
  const std::string f = (dir / "7.0.0.1.spool").string();
  std::size_t next = 0;
  auto a = Spool::read_from(f, 0, 500, next);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 2u);
  ASSERT_TRUE(s.append({ev(7, 2)}).ok());
  std::size_t next2 = 0;
  auto b = Spool::read_from(f, next, 500, next2);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*b)[0].attrs["i"], 2);
  EXPECT_EQ(next2, fs::file_size(f));
  // A record still being written (a torn tail) is not returned, and not skipped.
  std::ofstream(f, std::ios::app | std::ios::binary) << std::string("\x40\x00\x00\x00partial", 11);
  std::size_t next3 = 0;
  auto c = Spool::read_from(f, next2, 500, next3);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->empty());
  EXPECT_EQ(next3, next2);
}

TEST_F(SpoolTest, AStepsFileIsLockedUntilTheStepLetsGo) {
  std::string f;
  {
    Spool s(dir, "8.0.0.1.spool", 64u << 20);
    ASSERT_TRUE(s.append({ev(8, 0)}).ok());
    f = (dir / "8.0.0.1.spool").string();
    EXPECT_EQ(spool_lock(f), -1) << "a replayer must not take a live step's file";
  }
  const int lk = spool_lock(f);
  EXPECT_GE(lk, 0) << "an ended step's file is free to replay";
  spool_unlock(lk);
}

TEST_F(SpoolTest, ALongStepsFileIsRotatedAndTheFullOneReleased) {
  Spool s(dir, "9.0.0.1.spool", 64u << 20);
  for (int i = 0; i < 6000; ++i) ASSERT_TRUE(s.append({ev(9, i)}).ok());  // ~1.5 MB
  const auto files = spool_files_oldest_first(dir);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_TRUE(files[0].ends_with("/9.0.0.1.spool"));
  EXPECT_TRUE(files[1].ends_with("/9.0.0.1-1.spool"));
  EXPECT_LE(fs::file_size(files[0]), Spool::kRotateBytes + 4096);
  const int lk = spool_lock(files[0]);
  EXPECT_GE(lk, 0) << "the full file is released";
  spool_unlock(lk);
  EXPECT_EQ(spool_lock(files[1]), -1) << "the current one is still the step's";
  // Nothing lost, nothing twice, in order across the two files.
  std::vector<int> seen;
  for (const auto& f : files) {
    auto evs = Spool::read_file(f);
    ASSERT_TRUE(evs.ok());
    const std::vector<Event> got = std::move(evs).value();
    for (const Event& e : got) seen.push_back(e.attrs["i"].get<int>());
  }
  ASSERT_EQ(seen.size(), 6000u);
  for (int k = 0; k < 6000; ++k) ASSERT_EQ(seen[static_cast<std::size_t>(k)], k);
}

TEST_F(SpoolTest, AnEmptyFileJustCreatedIsLeftAlone) {
  const fs::path f = dir / "10.0.0.1.spool";
  std::ofstream(f).flush();
  EXPECT_TRUE(spool_just_created(f.string()));
  std::ofstream(f, std::ios::binary) << "VGSPOOL1";
  EXPECT_FALSE(spool_just_created(f.string()));
}

}  // namespace
}  // namespace vigil::spank
