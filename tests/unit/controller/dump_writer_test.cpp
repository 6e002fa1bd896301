// dump_writer_test.cpp — the HDF5 result dumps: SWMR visibility to a reader in
// another process, late metrics in segments, finalisation with links and
// digests, refused shapes, and a rebuild after a writer died mid-run.
#include "dump_fixture.hpp"

#include <sys/stat.h>
#include <sys/wait.h>

#include <cmath>

namespace vigil::controller {
namespace {
using namespace dumptest;

TEST(DumpPath, PatternIsExpandedAndChecked) {
  DumpOwner o{1000, 1000, "bob"};
  EXPECT_EQ(*dump_path("/r", "{user}/{job}.h5", o, 7), "/r/bob/7.h5");
  EXPECT_EQ(*dump_path("/r", "u{uid}/job-{job}.h5", o, 7), "/r/u1000/job-7.h5");
  EXPECT_FALSE(dump_path("/r", "../{job}.h5", o, 7));
  EXPECT_FALSE(dump_path("/r", "/abs/{job}.h5", o, 7));
  EXPECT_FALSE(dump_path("/r", "{user}.h5", o, 7));
  EXPECT_FALSE(dump_path("/r", "{job}.txt", o, 7));
}

TEST_F(DumpWriterTest, ValuesAreVisibleToASwmrReaderWhileTheJobRuns) {
  DumpWriter w(root.string(), "{user}/{job}.h5", loader());
  commit(w, {scalar(1, "energy", 1.0, 0), scalar(2, "energy", 2.0, 1), field(3, 1)});
  w.drain();
  EXPECT_EQ(swmr_rows(main_path(), "/stages/main/energy"), 2);
  EXPECT_EQ(swmr_rows(main_path(), "/stages/main/temperature/index"), 1);
  commit(w, {scalar(4, "energy", 3.0, 2), field(5, 2)});
  w.drain();
  EXPECT_EQ(swmr_rows(main_path(), "/stages/main/energy"), 3);
  EXPECT_EQ(swmr_rows(main_path(), "/stages/main/temperature/values"), 2);
  struct stat st{};
  ASSERT_EQ(stat(main_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "only the job's user may read it";
  EXPECT_EQ(w.stats().records, 5u);
}

TEST_F(DumpWriterTest, LateMetricsGoToASegmentAndFinalisationLinksThem) {
  DumpWriter w(root.string(), "{user}/{job}.h5", loader());
  commit(w, {scalar(1, "energy", 1.0, 0)});
  w.drain();
  commit(w, {scalar(2, "energy", 2.0, 1), scalar(3, "residual", 0.5, 1, "relax")});
  w.drain();
  const std::string seg = root / "alice" / "42.seg001.h5";
  EXPECT_EQ(swmr_rows(seg, "/stages/relax/residual"), 1);
  EXPECT_EQ(swmr_rows(main_path(), "/vigil/segments"), 1);
  w.finalise(42, owner, "test");
  w.drain();
  auto fin = w.take_finished();
  ASSERT_EQ(fin.size(), 1u);
  ASSERT_TRUE(fin[0].ok) << fin[0].error;
  EXPECT_EQ(fin[0].records, 3);
  EXPECT_EQ(fin[0].last_step, 1);
  ASSERT_EQ(fin[0].files.size(), 2u);
  for (const auto& f : fin[0].files) EXPECT_EQ(f.sha256, file_sha256(f.path)) << f.path;
  // The finished main file reads as one tree: the segment's metric is linked.
  hid_t f = H5Fopen(main_path().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t d = H5Dopen2(f, "/stages/relax/residual", H5P_DEFAULT);
  EXPECT_GE(d, 0) << "external link to the segment resolves";
  if (d >= 0) H5Dclose(d);
  int complete = 0;
  hid_t a = H5Aopen(f, "complete", H5P_DEFAULT);
  ASSERT_GE(a, 0);
  H5Aread(a, H5T_NATIVE_INT, &complete);
  H5Aclose(a);
  H5Fclose(f);
  EXPECT_EQ(complete, 1);
}

TEST_F(DumpWriterTest, AValueOfAnotherShapeIsRefusedNotFatal) {
  DumpWriter w(root.string(), "{user}/{job}.h5", loader());
  commit(w, {field(1, 1, 3, 4), field(2, 2, 5, 5), scalar(3, "temperature", 1.0, 3), field(4, 4, 3, 4)});
  w.drain();
  EXPECT_EQ(swmr_rows(main_path(), "/stages/main/temperature/index"), 2);
  EXPECT_EQ(w.stats().refused, 2u);
}

TEST_F(DumpWriterTest, AWriterKilledMidRunIsRebuiltFromTheStoreWithoutDuplicates) {
  // A writer process dies without closing its file (SWMR flag left set).
  std::vector<ResultValue> first;
  for (int i = 1; i <= 50; ++i) first.push_back(scalar(i, "energy", i, i));
  stored = first;
  const pid_t pid = fork();
  if (pid == 0) {
    JobDump* leaked = new JobDump(main_path(), owner, 42);
    _exit(leaked->append(first) ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(fs::exists(main_path()));
  // Left like this, the file is still readable by a SWMR reader.
  EXPECT_EQ(swmr_rows(main_path(), "/stages/main/energy"), 50);
  // The next vigild: more values arrive, some of them replays of stored ones.
  DumpWriter w(root.string(), "{user}/{job}.h5", loader());
  w.rebuild(42, owner);
  std::vector<ResultValue> more;
  for (int i = 51; i <= 60; ++i) more.push_back(scalar(i, "energy", i, i));
  commit(w, more);
  w.append(owner, {scalar(40, "energy", 40, 40)});  // an old one handed over again
  w.drain();
  EXPECT_EQ(swmr_rows(main_path(), "/stages/main/energy"), 60);
  w.finalise(42, owner, "end");
  w.drain();
  auto fin = w.take_finished();
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_TRUE(fin[0].ok) << fin[0].error;
  EXPECT_EQ(fin[0].records, 60);
}

TEST_F(DumpWriterTest, AnUnwritableRootIsAnErrorNotACrash) {
  fs::create_directories(root);
  std::ofstream(root / "alice") << "a file where the user's directory should be";
  DumpWriter w(root.string(), "{user}/{job}.h5", loader());
  commit(w, {scalar(1, "energy", 1.0, 0)});
  w.drain();
  EXPECT_EQ(w.stats().errors, 1u);
  EXPECT_EQ(w.stats().records, 0u);
}

// A reader that polls for the file (as users' h5py scripts do) opens it as
// soon as it exists: it must then already be a SWMR file. Before, the file
// appeared empty at once, a reader's open failed, and the HDF5 lock the reader
// held for that moment could make vigild's own create fail.
TEST_F(DumpWriterTest, TheFileAppearsOnlyOnceReadersCanOpenIt) {
  const std::string path = main_path();
  const pid_t pid = fork();
  if (pid == 0) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    for (int i = 0; i < 200000; ++i) {  // up to ~10 s
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0) {
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
        const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
        _exit(f >= 0 ? 0 : 3);
      }
      usleep(50);
    }
    _exit(2);
  }
  usleep(20000);  // the reader is polling
  DumpWriter w(root.string(), "{user}/{job}.h5", loader(), {});
  commit(w, {scalar(1, "energy", 1, 1), scalar(2, "residual", 2, 1)});
  w.drain();
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: never appeared, 3: appeared but could not be opened";
  EXPECT_EQ(w.stats().errors, 0u);
  EXPECT_FALSE(fs::exists(path + kFreshSuffix));
  EXPECT_EQ(swmr_rows(path, "/stages/main/energy"), 1);
}

}  // namespace
}  // namespace vigil::controller
