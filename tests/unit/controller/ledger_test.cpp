// ledger_test.cpp — the digest worker: digests only the user's files, and
// deletes (retention) only with the user's identity and only the very file
// that was verified. Runs as root (as scripts/test does) to act as vigild.
#include "ledger.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace vigil::controller {
namespace {

namespace fs = std::filesystem;
constexpr uid_t kUser = 65534;  // nobody
constexpr gid_t kGroup = 65534;

struct LedgerTest : ::testing::Test {
  fs::path dir;
  DigestWorker worker;
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the digest worker's checks need root, as vigild runs";
    char tmpl[] = "/tmp/vigil-ledger-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    ASSERT_EQ(chown(dir.c_str(), kUser, kGroup), 0);
  }
  void TearDown() override { fs::remove_all(dir); }

  fs::path file(const std::string& name, const std::string& body, uid_t owner = kUser) {
    const fs::path p = dir / name;
    std::ofstream(p) << body;
    EXPECT_EQ(chown(p.c_str(), owner, kGroup), 0);
    return p;
  }
  DigestWorker::Done run(DigestWorker::Task t) {
    worker.submit(std::move(t));
    worker.drain();
    auto done = worker.take_done();
    EXPECT_EQ(done.size(), 1u);
    return done.empty() ? DigestWorker::Done{} : done.front();
  }
  DigestWorker::Done digest(const fs::path& p) {
    DigestWorker::Task t;
    t.kind = DigestWorker::Task::Kind::ledger;
    t.owner = kUser;
    t.entry.path = p;
    return run(std::move(t));
  }
  DigestWorker::Done prune(const CheckpointEntry& e) {
    DigestWorker::Task t;
    t.kind = DigestWorker::Task::Kind::prune;
    t.owner = kUser;
    t.group = kGroup;
    t.entry = e;
    return run(std::move(t));
  }
};

TEST_F(LedgerTest, DigestsTheUsersFileAndDeletesItAsTheUser) {
  const fs::path p = file("c1.ckpt", "checkpoint one");
  auto d = digest(p);
  ASSERT_TRUE(d.error.empty()) << d.error;
  EXPECT_EQ(d.entry.bytes, 14u);
  EXPECT_NE(d.entry.mtime_ns, 0);
  auto gone = prune(d.entry);
  EXPECT_TRUE(gone.error.empty()) << gone.error;
  EXPECT_FALSE(fs::exists(p));
  EXPECT_EQ(geteuid(), 0u);  // the worker thread took the user's fsuid, not the process
}

TEST_F(LedgerTest, AFileChangedSinceItWasVerifiedIsNotDeleted) {
  const fs::path p = file("c2.ckpt", "checkpoint two");
  auto d = digest(p);
  ASSERT_TRUE(d.error.empty());
  std::ofstream(p, std::ios::app) << "more";
  auto kept = prune(d.entry);
  EXPECT_NE(kept.error.find("changed since it was verified"), std::string::npos) << kept.error;
  EXPECT_TRUE(fs::exists(p));
}

TEST_F(LedgerTest, AnotherUsersFileIsNeitherDigestedNorDeleted) {
  const fs::path p = file("root.ckpt", "root's", 0);
  EXPECT_NE(digest(p).error.find("not owned by the job's user"), std::string::npos);
  CheckpointEntry e;
  e.path = p;
  e.bytes = 6;
  EXPECT_NE(prune(e).error.find("not owned by the job's user"), std::string::npos);
  EXPECT_TRUE(fs::exists(p));
}

TEST_F(LedgerTest, TheKernelRefusesWhatTheUserCouldNotDelete) {
  // The user's file in a directory only root may write: root could delete
  // it, the user could not, so vigild does not either.
  const fs::path sub = dir / "rootdir";
  fs::create_directory(sub);
  ASSERT_EQ(chmod(sub.c_str(), 0755), 0);
  const fs::path p = sub / "c3.ckpt";
  std::ofstream(p) << "three";
  ASSERT_EQ(chown(p.c_str(), kUser, kGroup), 0);
  auto d = digest(p);
  ASSERT_TRUE(d.error.empty()) << d.error;
  auto kept = prune(d.entry);
  EXPECT_NE(kept.error.find("Permission denied"), std::string::npos) << kept.error;
  EXPECT_TRUE(fs::exists(p));
}

TEST_F(LedgerTest, ASymlinkIsNotFollowed) {
  const fs::path target = file("real.ckpt", "real");
  const fs::path link = dir / "link.ckpt";
  fs::create_symlink(target, link);
  EXPECT_NE(digest(link).error.find("not a regular file"), std::string::npos);
  CheckpointEntry e;
  e.path = link;
  e.bytes = 4;
  EXPECT_NE(prune(e).error.find("not a regular file"), std::string::npos);
  EXPECT_TRUE(fs::exists(target));
}

}  // namespace
}  // namespace vigil::controller
