// results_module.hpp — live results, early signals, stop-and-gather (ADR 0010, 0011).
//
// In:    `result` events (validated by the intake: results.cpp), `checkpoint`
//        and `checkpoint_signal` events (a stop's gather), state changes to a
//        terminal state; requests `results` (vigil tail) and `stop`.
// Out:   values handed to the DumpWriter after each commit (HDF5, SWMR);
//        dumps finalised 2 s after the job ends, with a `results_final` event
//        (files, sizes, SHA-256); `rule_fired` events; `stop` events, the
//        job's checkpoint signal, its cancellation through Slurm, STOPPED.
// State: the writer and its read-only store connection; per job its rule
//        watch; values of the open group (dropped if it rolls back); dumps to
//        finalise; stops under way.
//        Values the dump holds on disk leave the store (ADR 0018): each
//        sync the writer reports is applied (Store::mark_dumped), and the
//        rows left as replay ids go `results_replay_h` later; a `results`
//        query for values that left the store is answered from the files.
// Fails: a dump that cannot be written is reopened and completed from the
//        store later (DumpWriter); a stop whose simulation never checkpoints
//        is cancelled after its timeout, with that reason.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <unordered_map>

#include "core.hpp"
#include "vigil/rules.hpp"

namespace vigil::controller {

class ResultsModule : public Module {
 public:
  explicit ResultsModule(Core& core);
  ~ResultsModule() override;
  const char* name() const override { return "results"; }
  DumpWriter* writer() { return dumps_.get(); }
  void drain();  // at shutdown: committed values reach their files

 private:
  void start_dumps();
  RuleWatch* rules_of(std::uint32_t job);  // null: none, or the job's start not heard of yet
  void on_result(const Event& e, std::int64_t seq, std::int64_t now);
  void fire(std::uint32_t job, const RuleFiring& f, std::int64_t now);
  Result<json> begin_stop(std::uint32_t job, bool gather, const std::string& reason, int timeout_s, std::int64_t now);
  void on_signal_delivered(const Event& e, std::int64_t now);
  void on_checkpoint(const Event& e, std::int64_t now);
  void tick(std::int64_t now);
  void tick_stops(std::int64_t now);
  void record_finished(std::int64_t now);
  void retire(std::uint32_t job, std::int64_t now);
  void query(const Caller& who, const json& req, Reply reply);
  Result<json> answer(std::uint32_t job, std::int64_t after, int limit, const std::vector<ResultValue>* from_dump);
  void apply_syncs(std::int64_t now);
  bool drop_dumped(const DumpSynced& m);
  void answer_reads();
  Result<json> request_stop(const Caller& who, const json& req);

  Core& core_;
  std::unique_ptr<Store> reader_;     // the dump writer's own read-only connection
  std::unique_ptr<DumpWriter> dumps_;  // null when results_dir is ""
  std::unordered_map<std::uint32_t, RuleWatch> rules_;
  std::map<std::uint32_t, std::vector<ResultValue>> staged_;  // this group's values, handed over at commit
  std::map<std::uint32_t, std::int64_t> finalise_at_;         // job -> when (late values grace)
  static constexpr std::int64_t kFinaliseGrace = 2'000'000'000;  // the SDK flushes every 100 ms
  struct Stop {
    std::int64_t requested_ns = 0, deadline_ns = 0, cancel_at_ns = 0;
    std::uint64_t command = 0;        // the checkpoint command sent to the steps
    std::int64_t delivered_ns = -1;   // when a plugin reported delivering it (its clock)
    std::vector<std::pair<std::int64_t, std::string>> early;  // checkpoints seen before that report
    std::string reason, gathered;
  };
  std::map<std::uint32_t, Stop> stops_;
  struct PendingRead {
    Reply reply;
    std::uint32_t job = 0;
    std::int64_t after = 0;
    int limit = 0;
  };
  std::map<std::uint64_t, PendingRead> reads_;  // queries waiting on the dump writer
  std::uint64_t next_read_ = 1;
  std::int64_t last_sync_ns_ = 0;  // when the writer was last asked to sync
  std::deque<std::pair<std::int64_t, std::int64_t>> replay_marks_;  // (when, newest event seq then)
  static void gathered(Stop& st, const std::string& what, std::int64_t now);
};

}  // namespace vigil::controller
