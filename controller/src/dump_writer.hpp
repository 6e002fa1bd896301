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
// holds each value until the dump has it on disk (ADR 0018): on sync() (the
// results module asks every results_sync_s) the files with new values are
// fsynced and the range they now hold is reported (take_synced), after which
// the store drops those values.
// A dump that is stale after a crash or broken by a full disk is reopened,
// cut back to what was synced, and completed from the store — never
// appended twice. One that cannot be reopened is set aside (.damaged) and
// started again from what the store still holds (counted as lost).
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
inline constexpr const char* kFreshSuffix = ".new";  // a dump file while it is made (then renamed)

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
  // dump_resume.cpp (ADR 0018). Flushes and fsyncs every file: what has been
  // appended so far is on disk.
  Status sync();
  // Closes every file once all of them can be flushed; if one cannot (a full
  // disk), nothing is closed and the dump may be closed later. Closing a
  // dataset that cannot be flushed leaves HDF5 (1.10) a dangling id that
  // crashes the next open of that file.
  Status close();
  // Reopens the files of a dump written earlier (by a vigild that was killed:
  // their SWMR-writer marks are cleared; or finalised: appended to again),
  // drops every row newer than `upto_seq` (never synced; the store still
  // holds those) and continues. A missing or unreadable file is an error.
  static Result<std::unique_ptr<JobDump>> resume(const std::string& main_path, const DumpOwner& owner,
                                                 std::uint32_t job, std::int64_t upto_seq);
  // A finished dump, read-only (for read()).
  static Result<std::unique_ptr<JobDump>> open_read(const std::string& main_path, std::uint32_t job);
  // Values with seq > after_seq, in seq order, at most `limit`.
  Result<std::vector<ResultValue>> read(std::int64_t after_seq, int limit);

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
  Status flush_files();  // H5Fflush of every file (dump_resume.cpp)
  Status reopen(bool write, std::int64_t upto_seq);  // dump_resume.cpp
  Status start_swmr(std::size_t file, File& f);      // dump_resume.cpp
  Status reopen_file(const std::string& path, bool write, std::int64_t upto_seq);
  bool read_only_ = false;

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
  std::uint32_t incarnation = 0;
  std::int64_t from_seq = 0, upto_seq = 0;  // ok: values now durable in the files (ADR 0018)
};

// The job's values with seq in [from_seq, upto_seq] are on disk in its dump
// (the files were fsynced): the store may let them go (ADR 0018).
struct DumpSynced {
  std::uint32_t job = 0, incarnation = 0;
  std::int64_t from_seq = 0, upto_seq = 0;
};

// A `results` query answered from a dump (values that left the store).
struct DumpRead {
  std::uint64_t id = 0;
  Result<std::vector<ResultValue>> values = std::vector<ResultValue>{};
};

class DumpWriter {
 public:
  // Reads a job's stored values after `after_seq` (at most `limit`), in order.
  using Loader = std::function<Result<std::vector<ResultValue>>(std::uint32_t job, std::int64_t after_seq, int limit)>;
  // How far the store has let the job's values go (Store::dump_seq).
  using DumpedUpto = std::function<std::int64_t(std::uint32_t job)>;
  DumpWriter(std::string root, std::string pattern, Loader loader, DumpedUpto dumped = {});
  ~DumpWriter();

  // All thread-safe and non-blocking: the work is queued for the writer thread.
  void append(const DumpOwner& owner, std::vector<ResultValue> values);  // one job's values, store order
  void finalise(std::uint32_t job, const DumpOwner& owner, std::string reason);
  void rebuild(std::uint32_t job, const DumpOwner& owner);  // after a crash: the files may be stale
  // Every file with values since its last sync is fsynced, after what was
  // queued before; the ranges now on disk come back through take_synced().
  void sync();
  // Values after `after_seq` read from the job's files; the answer comes back
  // through take_reads() under `id`.
  void read(std::uint64_t id, std::uint32_t job, const DumpOwner& owner, std::int64_t after_seq, int limit);
  std::vector<DumpFinal> take_finished();
  std::vector<DumpSynced> take_synced();
  std::vector<DumpRead> take_reads();
  // Blocks until everything queued so far is done (tests, shutdown).
  void drain();

  struct Stats {
    std::uint64_t records = 0, refused = 0, errors = 0, rebuilds = 0, finalised = 0, files_open = 0, queued = 0;
    std::uint64_t syncs = 0, resumed = 0, lost = 0;  // lost: dumps that could not be reopened
  };
  Stats stats() const;

 private:
  struct Task {
    enum class Kind { append, finalise, rebuild, read, sync } kind = Kind::append;
    std::uint32_t job = 0;
    DumpOwner owner;
    std::vector<ResultValue> values;
    std::string reason;
    std::uint64_t read_id = 0;
    std::int64_t after_seq = 0;
    int limit = 0;
  };
  struct JobState {
    std::unique_ptr<JobDump> dump;
    std::unique_ptr<JobDump> broken;  // failed; closed (JobDump::close) before the files are opened again
    std::uint32_t incarnation = 0;
    std::int64_t written_seq = 0;
    std::int64_t unsynced_from = 0;   // the first value appended since the last sync; 0: none
    std::int64_t synced_seq = 0;      // values up to here are on disk
    std::int64_t retry_after_ns = 0;  // after an I/O error: rebuild no sooner than this
  };
  void push(Task t);  // onto the queue, and wake the writer
  void run();
  void handle(Task& t);
  bool open_job(std::uint32_t job, const DumpOwner& owner, JobState& st);
  void write(std::uint32_t job, JobState& st, const std::vector<ResultValue>& values);
  Status append_counted(JobState& st, const std::vector<ResultValue>& values);
  void fail(std::uint32_t job, JobState& st, const Error& err);
  void sync_all();
  void finalise_job(Task& t, JobState& st);
  void read_job(const Task& t);

  std::string root_, pattern_;
  Loader loader_;
  DumpedUpto dumped_;
  std::map<std::uint32_t, JobState> jobs_;  // writer thread only

  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Task> queue_;
  std::vector<DumpFinal> finished_;
  std::vector<DumpSynced> synced_;
  std::vector<DumpRead> reads_;
  bool stop_ = false, busy_ = false;
  std::atomic<std::uint64_t> records_{0}, refused_{0}, errors_{0}, rebuilds_{0}, finalised_{0}, open_{0};
  std::atomic<std::uint64_t> syncs_{0}, resumed_{0}, lost_{0};
  std::thread thread_;
};

}  // namespace vigil::controller
