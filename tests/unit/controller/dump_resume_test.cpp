// dump_resume_test.cpp — the dump as the record (ADR 0018): syncs reported
// to the store, a writer killed after a sync reopened and cut back to it, a
// finalised dump taking late values, reading values back, and a dump that
// cannot be reopened set aside.
#include "dump_fixture.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>

namespace vigil::controller {
namespace {
using namespace dumptest;

std::vector<std::int64_t> seqs(const std::vector<ResultValue>& vs) {
  std::vector<std::int64_t> out;
  for (const auto& v : vs) out.push_back(v.seq);
  return out;
}

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = from; i <= to; ++i) out.push_back(i);
  return out;
}

// Everything the dump at `path` holds, in seq order.
std::vector<ResultValue> read_all(const std::string& path) {
  auto d = JobDump::open_read(path, 42);
  EXPECT_TRUE(d) << (d ? "" : d.error().what());
  if (!d) return {};
  auto vs = (*d)->read(0, 100000);
  EXPECT_TRUE(vs);
  return vs ? *vs : std::vector<ResultValue>{};
}

TEST_F(DumpWriterTest, SyncsAreReportedWithTheRangeNowOnDisk) {
  DumpWriter w(root.string(), "{user}/{job}.h5", loader());
  std::vector<ResultValue> vs;
  for (int i = 1; i <= 20; ++i) vs.push_back(scalar(i, "energy", i, i));
  commit(w, vs);
  w.drain();  // (the first append loads what the "store" holds by then)
  w.sync();
  w.sync();  // nothing new: nothing to report
  commit(w, {scalar(21, "energy", 21, 21), field(22, 21)});
  w.sync();
  w.drain();
  std::vector<DumpSynced> marks = w.take_synced();
  ASSERT_EQ(marks.size(), 2u);
  EXPECT_EQ(marks[0].from_seq, 1);
  EXPECT_EQ(marks[0].upto_seq, 20);
  EXPECT_EQ(marks[1].from_seq, 21);
  EXPECT_EQ(marks[1].upto_seq, 22);
  EXPECT_EQ(w.stats().syncs, 2u);
}

TEST_F(DumpWriterTest, AWriterKilledAfterASyncIsCutBackToItAndCompletedFromTheStore) {
  // The child writes 1..30, syncs, writes 31..40 (never synced) and dies.
  std::vector<ResultValue> synced, later;
  for (int i = 1; i <= 30; ++i) synced.push_back(i % 10 ? scalar(i, "energy", i, i) : field(i, i));
  for (int i = 31; i <= 40; ++i) later.push_back(i % 10 ? scalar(i, "energy", i, i) : field(i, i));
  const pid_t pid = fork();
  if (pid == 0) {
    JobDump* leaked = new JobDump(main_path(), owner, 42);
    _exit(leaked->append(synced) && leaked->sync() && leaked->append(later) ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // The store dropped 1..30 (the sync's mark); it still has 31..40 and more.
  for (int i = 31; i <= 45; ++i) stored.push_back(i % 10 ? scalar(i, "energy", i, i) : field(i, i));
  DumpWriter w(root.string(), "{user}/{job}.h5", loader(), [](std::uint32_t) { return std::int64_t{30}; });
  w.rebuild(42, owner);
  w.drain();
  EXPECT_EQ(w.stats().resumed, 1u);
  EXPECT_EQ(w.stats().lost, 0u);
  w.finalise(42, owner, "end");
  w.drain();
  auto fin = w.take_finished();
  ASSERT_EQ(fin.size(), 1u);
  ASSERT_TRUE(fin[0].ok) << fin[0].error;
  EXPECT_EQ(fin[0].records, 45);
  EXPECT_EQ(fin[0].upto_seq, 45);
  auto all = read_all(main_path());
  EXPECT_EQ(seqs(all), range(1, 45));  // each value once, the synced ones from the old file
  ASSERT_EQ(all.size(), 45u);
  EXPECT_TRUE(all[9].array);
  EXPECT_EQ(all[9].data, field(10, 10).data);
  EXPECT_EQ(all[0].units, "J");
  EXPECT_DOUBLE_EQ(all[4].value, 5.0);
}

TEST_F(DumpWriterTest, AFinalisedDumpTakesLateValuesAndIsFinalisedAgain) {
  std::atomic<std::int64_t> dumped{0};
  DumpWriter w(root.string(), "{user}/{job}.h5", loader(), [&](std::uint32_t) { return dumped.load(); });
  commit(w, {scalar(1, "energy", 1, 1), scalar(2, "energy", 2, 2)});
  w.drain();
  commit(w, {scalar(3, "late_metric", 3, 3)});  // a segment
  w.finalise(42, owner, "end");
  w.drain();
  auto first = w.take_finished();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].from_seq, 1);
  EXPECT_EQ(first[0].upto_seq, 3);
  dumped = 3;  // the store let them go
  // A value after the finalisation: the dump is reopened, not rebuilt.
  commit(w, {scalar(4, "energy", 4, 4)});
  w.finalise(42, owner, "late value");
  w.drain();
  auto fin = w.take_finished();
  ASSERT_EQ(fin.size(), 1u);
  ASSERT_TRUE(fin[0].ok) << fin[0].error;
  EXPECT_EQ(fin[0].records, 4);
  EXPECT_EQ(fin[0].files.size(), 2u);
  EXPECT_EQ(w.stats().resumed, 1u);
  EXPECT_EQ(seqs(read_all(main_path())), range(1, 4));
}

TEST_F(DumpWriterTest, ReadsComeFromTheOpenFilesOrAFinishedOne) {
  DumpWriter w(root.string(), "{user}/{job}.h5", loader());
  std::vector<ResultValue> vs;
  for (int i = 1; i <= 12; ++i) vs.push_back(i % 4 ? scalar(i, i % 2 ? "a" : "b", i, i) : field(i, i));
  commit(w, vs);
  w.read(7, 42, owner, 5, 4);  // open: seq > 5, at most 4
  w.drain();
  auto r = w.take_reads();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].id, 7u);
  ASSERT_TRUE(r[0].values);
  EXPECT_EQ(seqs(*r[0].values), range(6, 9));
  w.finalise(42, owner, "end");
  w.read(8, 42, owner, 0, 100);  // finished: opened read-only
  w.drain();
  r = w.take_reads();
  ASSERT_EQ(r.size(), 1u);
  ASSERT_TRUE(r[0].values);
  EXPECT_EQ(seqs(*r[0].values), range(1, 12));
  w.read(9, 43, owner, 0, 100);  // no such dump
  w.drain();
  r = w.take_reads();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].values);
}

TEST_F(DumpWriterTest, ADumpThatCannotBeReopenedIsSetAsideAndCounted) {
  fs::create_directories(fs::path(main_path()).parent_path());
  std::ofstream(main_path()) << "not an HDF5 file";
  for (int i = 11; i <= 15; ++i) stored.push_back(scalar(i, "energy", i, i));
  DumpWriter w(root.string(), "{user}/{job}.h5", loader(), [](std::uint32_t) { return std::int64_t{10}; });
  w.rebuild(42, owner);
  w.drain();
  EXPECT_EQ(w.stats().lost, 1u);
  EXPECT_TRUE(fs::exists(main_path() + ".damaged"));
  EXPECT_EQ(seqs(read_all(main_path())), range(11, 15));  // what the store still had
}

TEST(JobDumpResume, AMissingFileIsAnError) {
  auto d = JobDump::resume("/nonexistent/vigil/42.h5", DumpOwner{}, 42, 5);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("does not exist"), std::string::npos);
}

// The results directory fills up mid-run (a 256 KiB tmpfs; the tests run as
// root, as vigild does). The writer reports the error and keeps running; once
// there is room again the dump is reopened, cut back to its last sync and
// completed from the store: every value once, none lost.
TEST_F(DumpWriterTest, AFullDiskBreaksTheDumpUntilThereIsRoomThenItIsReopened) {
  fs::create_directories(root);
  ASSERT_EQ(std::system(("mount -t tmpfs -o size=256k tmpfs " + root.string()).c_str()), 0)
      << "needs root to mount a small tmpfs";
  struct Unmount {
    std::string dir;
    ~Unmount() { std::system(("umount -l " + dir).c_str()); }
  } unmount{root.string()};
  std::atomic<std::int64_t> dumped{0};
  DumpWriter w(root.string(), "{user}/{job}.h5", loader(), [&](std::uint32_t) { return dumped.load(); });
  std::int64_t seq = 0;
  auto batch = [&] {
    std::vector<ResultValue> vs;
    for (int i = 0; i < 10; ++i, ++seq) vs.push_back(seq % 5 ? scalar(seq + 1, "energy", 1.0 * seq, seq) : field(seq + 1, seq, 32, 32));
    commit(w, std::move(vs));
  };
  batch();
  w.sync();
  w.drain();
  auto marks = w.take_synced();
  ASSERT_EQ(marks.size(), 1u);
  dumped = marks[0].upto_seq;  // the store lets them go
  {
    std::lock_guard<std::mutex> g(mu);
    stored.erase(std::remove_if(stored.begin(), stored.end(), [&](const ResultValue& v) { return v.seq <= dumped; }),
                 stored.end());
  }
  for (int i = 0; i < 60 && w.stats().errors == 0; ++i) {  // 8 KiB arrays: 256 KiB is full within 40 batches
    batch();
    w.drain();
  }
  ASSERT_GT(w.stats().errors, 0u) << "the disk never filled";
  const auto errors = w.stats().errors;
  w.rebuild(42, owner);  // still full: the broken dump cannot be closed yet, which is an error, not a crash
  w.drain();
  EXPECT_GT(w.stats().errors, errors);
  ASSERT_EQ(std::system(("mount -o remount,size=16m " + root.string()).c_str()), 0);
  w.rebuild(42, owner);  // what the results module does on its retry
  batch();
  w.finalise(42, owner, "end");
  w.drain();
  auto fin = w.take_finished();
  ASSERT_EQ(fin.size(), 1u);
  ASSERT_TRUE(fin[0].ok) << fin[0].error;
  EXPECT_EQ(w.stats().lost, 0u);
  EXPECT_GE(w.stats().resumed, 1u);
  auto all = read_all(main_path());
  EXPECT_EQ(seqs(all), range(1, seq));
}

}  // namespace
}  // namespace vigil::controller
