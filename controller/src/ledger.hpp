// ledger.hpp — the checkpoint ledger's digests, computed off the intake thread.
//
// A simulation reports each checkpoint it has written (vigil_report_checkpoint);
// vigild digests the file with SHA-256 on this worker thread (never on the
// simulation's critical path, never on the intake loop) and records the result
// on the job's timeline (`checkpoint_verified`: path, bytes, sha256, step,
// sim_time, node, restart). At restart the chosen checkpoint is digested again
// and compared: a changed or missing file is skipped for the previous verified
// one, and each skip is an event (docs/adr/0012-checkpoint-recovery.md).
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace vigil::controller {

struct CheckpointEntry {
  std::string path, sha256, node;
  std::uint64_t bytes = 0;
  std::int64_t step = 0, reported_ns = 0;
  std::int64_t mtime_ns = 0;  // when digested: a file changed since then is not pruned
  double sim_time = 0;
  std::uint32_t restart = 0;
  // Its `checkpoint` report and `checkpoint_verified` events (0: unknown):
  // folded into `checkpoint_pruned` when it is pruned (ADR 0019).
  std::int64_t report_seq = 0, verified_seq = 0;
};

class DigestWorker {
 public:
  // A new checkpoint to digest (kind ledger), a restart to choose a
  // checkpoint for (kind choose: candidates newest first, verified in order),
  // a checkpoint (or duplicate output) to delete (kind prune: retention, ADR
  // 0013), or a final output to digest for the registry (kind output).
  struct Task {
    enum class Kind { ledger, choose, prune, output, prune_output } kind = Kind::ledger;
    std::uint64_t token = 0;
    std::uint32_t job = 0;
    uid_t owner = 0;                         // the job's user: only their files are digested
    gid_t group = 0;                         // prune: deleted with the user's fsuid/fsgid
    std::string why;                         // prune: the retention reason
    std::string name;                        // output: its registry name; prune: a duplicate output's
    CheckpointEntry entry;                   // ledger: what was reported
    std::vector<CheckpointEntry> candidates;  // choose
  };
  struct Done {
    Task::Kind kind = Task::Kind::ledger;
    std::uint64_t token = 0;
    std::uint32_t job = 0;
    CheckpointEntry entry;          // ledger: with bytes and sha256 filled in
    std::string error;              // ledger: why it could not be digested; prune: not deleted
    std::string why;                // prune: the retention reason
    std::string name;               // output (and a duplicate output's prune)
    std::optional<CheckpointEntry> chosen;                        // choose
    std::vector<std::pair<CheckpointEntry, std::string>> skipped;  // choose: entry, why
    double seconds = 0;             // time spent digesting
  };

  DigestWorker();
  ~DigestWorker();
  DigestWorker(const DigestWorker&) = delete;
  DigestWorker& operator=(const DigestWorker&) = delete;
  void submit(Task t);
  std::vector<Done> take_done();
  void drain();  // tests

 private:
  void run();
  Done work(Task& t);
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Task> queue_;
  std::vector<Done> done_;
  bool stop_ = false, busy_ = false;
  std::thread thread_;
};

}  // namespace vigil::controller
