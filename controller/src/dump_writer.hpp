// dump_writer.hpp — each job's results as HDF5 files that readers tail (SWMR).
//
// Layout v1 (docs/adr/0010-result-dumps.md):
//   <main>.h5              attrs vigil_layout_version=1, job, user, segment=0
//     /stages/<stage>/<name>            scalar: 1-D compound rows {step, sim_time,
//                                       wall_time, value, task, restart, vigil_seq}
//     /stages/<stage>/<name>/values     array: (N, d1..dn) float64
//     /stages/<stage>/<name>/index      array: N rows {step, sim_time, wall_time,
//                                       task, restart, vigil_seq}
//     /vigil/segments                   1-D fixed strings: the segment files, in order
//   <main>.segNNN.h5       same layout, for metrics first seen after <main>.h5
//                          entered SWMR mode (SWMR allows appends only).
// At finalisation the main file gets external links to every segment's metrics,
// so a finished dump reads as one file; each file's SHA-256 is reported.
//
// Threads: all HDF5 calls happen on the DumpWriter's own thread (Debian's HDF5
// is not thread-safe). The intake thread hands it committed values; the store
// is the source of truth, so a dump that is missing, stale after a crash or
// broken by a full disk is rebuilt from the store — never appended twice.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "results.hpp"
#include "vigil/result.hpp"

namespace vigil::controller {

inline constexpr int kDumpLayoutVersion = 1;
inline constexpr int kMaxSegments = 32;

struct DumpOwner {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user;
  std::uint32_t incarnation = 0;  // >0: a later job under a reused id; {job} is "ID.N" (ADR 0017)
};

// "<root>/<pattern>" with {user}, {uid} and {job} replaced. The pattern must
// end in ".h5", stay below root and contain {job}.
Result<std::string> dump_path(const std::string& root, const std::string& pattern, const DumpOwner& owner,
                              std::uint32_t job);
Status check_dump_pattern(const std::string& pattern);

struct DumpFileInfo {
  std::string path;
  std::uint64_t bytes = 0;
  std::string sha256;
};

// One job's files. Not thread-safe; create, append and finalise on one thread.
class JobDump {
 public:
  JobDump(std::string main_path, DumpOwner owner, std::uint32_t job);
  ~JobDump();
  JobDump(const JobDump&) = delete;
  JobDump& operator=(const JobDump&) = delete;

  // Values in store order. Creates the main file on the first call and a
  // segment when new metrics appear later; flushes so SWMR readers see them.
  // A value whose kind or shape differs from the metric's first is refused.
  Status append(const std::vector<ResultValue>& values);
  // Closes every file, links segments into the main file, digests them all.
  Result<std::vector<DumpFileInfo>> finalise();

  std::int64_t records() const { return records_; }
  std::int64_t last_step() const { return last_step_; }
  std::uint64_t refused() const { return refused_; }
  bool created() const { return !files_.empty(); }
  // Removes the main file and its segments (before a rebuild).
  static void remove_files(const std::string& main_path);

 private:
  struct Metric;
  struct File;
  Status create_file(const std::vector<const ResultValue*>& firsts);
  void close_all();

  std::string main_path_;
  DumpOwner owner_;
  std::uint32_t job_;
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, std::unique_ptr<Metric>> metrics_;  // "stage/name"
  std::int64_t records_ = 0, last_step_ = -1;
  std::uint64_t refused_ = 0;
};

// The outcome of finalising one job's dump, reported back to the intake.
struct DumpFinal {
  std::uint32_t job = 0;
  bool ok = true;
  std::string error;
  std::string reason;
  std::vector<DumpFileInfo> files;
  std::int64_t records = 0, last_step = -1;
};

class DumpWriter {
 public:
  // Reads a job's stored values after `after_seq` (at most `limit`), in order.
  using Loader = std::function<Result<std::vector<ResultValue>>(std::uint32_t job, std::int64_t after_seq, int limit)>;
  DumpWriter(std::string root, std::string pattern, Loader loader);
  ~DumpWriter();

  // All thread-safe and non-blocking: the work is queued for the writer thread.
  void append(const DumpOwner& owner, std::vector<ResultValue> values);  // one job's values, store order
  void finalise(std::uint32_t job, const DumpOwner& owner, std::string reason);
  void rebuild(std::uint32_t job, const DumpOwner& owner);  // after a crash: the files may be stale
  std::vector<DumpFinal> take_finished();
  // Blocks until everything queued so far is done (tests, shutdown).
  void drain();

  struct Stats {
    std::uint64_t records = 0, refused = 0, errors = 0, rebuilds = 0, finalised = 0, files_open = 0, queued = 0;
  };
  Stats stats() const;

 private:
  struct Task {
    enum class Kind { append, finalise, rebuild } kind = Kind::append;
    std::uint32_t job = 0;
    DumpOwner owner;
    std::vector<ResultValue> values;
    std::string reason;
  };
  struct JobState {
    std::unique_ptr<JobDump> dump;
    std::int64_t written_seq = 0;
    std::int64_t retry_after_ns = 0;  // after an I/O error: rebuild no sooner than this
  };
  void run();
  void handle(Task& t);
  bool open_job(std::uint32_t job, const DumpOwner& owner, JobState& st);
  void write(std::uint32_t job, JobState& st, const std::vector<ResultValue>& values);
  Status append_counted(JobState& st, const std::vector<ResultValue>& values);
  void fail(std::uint32_t job, JobState& st, const Error& err);

  std::string root_, pattern_;
  Loader loader_;
  std::map<std::uint32_t, JobState> jobs_;  // writer thread only

  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Task> queue_;
  std::vector<DumpFinal> finished_;
  bool stop_ = false, busy_ = false;
  std::atomic<std::uint64_t> records_{0}, refused_{0}, errors_{0}, rebuilds_{0}, finalised_{0}, open_{0};
  std::thread thread_;
};

}  // namespace vigil::controller
