// dump_fixture.hpp — what the result-dump tests share: values to write, a
// SWMR reader in another process, and a writer fixture whose "store" is a
// vector (dump_writer_test.cpp, dump_resume_test.cpp).
#pragma once

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "dump_writer.hpp"
#include "vigil/crypto.hpp"

namespace vigil::controller::dumptest {
namespace fs = std::filesystem;

inline ResultValue scalar(std::int64_t seq, const std::string& name, double v, std::int64_t step, std::string stage = "main") {
  ResultValue r;
  r.job = 42;
  r.seq = seq;
  r.wall_ns = 1'700'000'000'000'000'000 + seq;
  r.stage = std::move(stage);
  r.name = name;
  r.units = "J";
  r.step = step;
  r.sim_time = static_cast<double>(step) * 0.5;
  r.value = v;
  return r;
}

inline ResultValue field(std::int64_t seq, std::int64_t step, std::int64_t rows = 3, std::int64_t cols = 4) {
  ResultValue r = scalar(seq, "temperature", 0, step);
  r.array = true;
  r.dims = {rows, cols};
  for (std::int64_t i = 0; i < rows * cols; ++i) r.data.push_back(static_cast<double>(step * 100 + i));
  return r;
}

// Rows of `object` as a SWMR reader in a separate process sees them (-1: error).
inline long swmr_rows(const std::string& path, const std::string& object) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    long rows = -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    if (f >= 0) {
      hid_t d = H5Dopen2(f, object.c_str(), H5P_DEFAULT);
      if (d >= 0) {
        H5Drefresh(d);
        hid_t sp = H5Dget_space(d);
        hsize_t dims[8] = {};
        H5Sget_simple_extent_dims(sp, dims, nullptr);
        rows = static_cast<long>(dims[0]);
      }
    }
    if (write(fds[1], &rows, sizeof rows) != sizeof rows) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  long rows = -1;
  if (read(fds[0], &rows, sizeof rows) != sizeof rows) rows = -1;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return rows;
}

inline std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return sha256_hex(bytes);
}

class DumpWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("vigil-dump-" + std::to_string(getpid()));
    fs::remove_all(root);
    owner = {getuid(), getgid(), "alice"};
  }
  void TearDown() override { fs::remove_all(root); }
  DumpWriter::Loader loader() {
    return [this](std::uint32_t, std::int64_t after, int limit) -> Result<std::vector<ResultValue>> {
      std::lock_guard<std::mutex> g(mu);
      std::vector<ResultValue> out;
      for (const auto& v : stored)
        if (v.seq > after && static_cast<int>(out.size()) < limit) out.push_back(v);
      return out;
    };
  }
  // What the intake does: store first, then hand over.
  void commit(DumpWriter& w, std::vector<ResultValue> vs) {
    {
      std::lock_guard<std::mutex> g(mu);
      stored.insert(stored.end(), vs.begin(), vs.end());
    }
    w.append(owner, std::move(vs));
  }
  std::string main_path() const { return (root / "alice" / "42.h5").string(); }

  fs::path root;
  DumpOwner owner;
  std::mutex mu;
  std::vector<ResultValue> stored;
};

}  // namespace vigil::controller::dumptest
