// checkpoint_ledger.hpp — which checkpoints of a job are verified (ADR 0012).
//
// In:    `checkpoint` events from the SDK (path, step, sim time); `restart_from`
//        requests from a restarted job's plugins (or its owner); `checkpoint_pruned`
//        and `checkpoint_skipped` events (a checkpoint leaves the ledger).
// Out:   `checkpoint_verified` (SHA-256, bytes, mtime; ok or the reason not),
//        `checkpoint_skipped` (changed since verified) and a `recovery`
//        `resume` event with the checkpoint a restart resumes from; the answer
//        to `restart_from` (one choice per attempt, shared by every node).
// State: each job's verified checkpoints, oldest first (loaded from the store
//        once per job), the choices under way and made.
// Digests run on Core::digests (never on the intake thread): a large file
// costs the loop nothing. Fails: a missing or foreign file is `ok: false` with
// the reason, never used for a restart.
#pragma once

#include <map>
#include <unordered_map>

#include "core.hpp"

namespace vigil::controller {

class CheckpointLedger : public Module {
 public:
  explicit CheckpointLedger(Core& core);
  const char* name() const override { return "checkpoint-ledger"; }
  // Verified checkpoints of `job`, oldest first.
  const std::vector<CheckpointEntry>& verified(std::uint32_t job);
  // A checkpoint (file and content) leaves the ledger: pruned or skipped.
  void forget(std::uint32_t job, const std::string& path, const std::string& sha256);
  static CheckpointEntry entry_from(const StoredEvent& verified);

 private:
  void add(const Event& e, std::int64_t seq);
  void restart_from(const Caller& who, const json& req, Reply reply);
  void digested(DigestWorker::Done& d, std::int64_t now);
  void chosen(DigestWorker::Done& d, std::int64_t now);
  Core& core_;
  std::unordered_map<std::uint32_t, std::vector<CheckpointEntry>> ledger_;
  using Attempt = std::pair<std::uint32_t, std::uint32_t>;  // (job, restart)
  std::map<Attempt, std::uint64_t> choosing_;                // attempt -> digest token
  std::map<Attempt, json> chosen_;                           // attempt -> answer
  std::map<std::uint64_t, Attempt> token_attempt_;
  std::multimap<std::uint64_t, Reply> waiters_;              // token -> who asked
};

}  // namespace vigil::controller
