// core.hpp — what every vigild module shares (flux-core's job-manager context).
//
// In:    the config, the store (the intake thread's writer connection), the
//        injected clock, the Slurm interface (may be null in tests).
// Out:   controller events on jobs' timelines (record), state changes
//        (lifecycle), both dispatched to the modules through `host`.
// State: the dispatch table; the live table of running steps (`monitor`,
//        updated by the liveness module, read by commands and the node gauges);
//        plugin commands waiting for their steps; per-job facts read from the
//        job's start event; the digest worker; counters.
// Fails: a store error while recording is logged and counted; the caller's
//        group (if any) decides whether to roll back.
// Single-threaded: everything here runs on the intake thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.hpp"
#include "dump_writer.hpp"
#include "heartbeat_monitor.hpp"
#include "module.hpp"

namespace vigil::controller {

using Clock = std::function<std::int64_t()>;  // ns since the epoch; injected for tests
std::int64_t wall_clock_ns();

struct IntakeCounters {
  std::atomic<std::uint64_t> frames{0}, events_stored{0}, events_duplicate{0}, sessions_opened{0}, commits{0};
  std::atomic<std::uint64_t> nodes_lost{0}, steps_silent{0}, drains{0}, drain_failures{0};
  std::atomic<std::uint64_t> transitions{0}, reconcile_rounds{0}, reconcile_errors{0};
  std::atomic<std::uint64_t> jobs_retired{0};  // earlier jobs archived when Slurm reused their id (ADR 0017)
  std::atomic<std::uint64_t> rules_fired{0}, stops{0}, checkpoints_failed{0}, outputs_duplicate{0};
  std::atomic<std::uint64_t> heartbeats{0}, usage_rows{0};
  std::atomic<std::uint64_t> results_pruned{0};  // values that left the store for their dump (ADR 0018)
  std::atomic<std::uint64_t> timelines_forgotten{0}, timeline_events_deleted{0};  // ADR 0020
  std::map<std::string, std::uint64_t> rejected;  // reason -> count (intake thread only)
};

// What several modules need to know about a job, read once from its start
// event (the plugin's --vigil-* options) and the jobs table, then cached.
struct JobFacts {
  bool loaded = false;   // a start event was found (until then, asked again)
  bool started = false;  // its options are known: a Vigil job
  bool dump = true;      // --vigil-results=off: values stored, no HDF5 file
  bool protect = false;  // --vigil-protect
  int keep = -1;         // --vigil-keep-checkpoints; -1: the site's
  int retries = -1;      // --vigil-retries; -1: the site's
  std::string rules;     // --vigil-rules
  std::string start_node;  // the batch host of the newest attempt
  std::uint32_t start_restart = 0;
  bool ended = false;    // in a terminal state
  DumpOwner owner;
};

// Commands for plugins (checkpoint signals), delivered in the ACK of each
// target step's next batch. In memory: a restart forgets them; they expire
// after kTtl.
class CommandQueue {
 public:
  static constexpr std::int64_t kTtl = 600LL * 1'000'000'000;
  // Queue `cmd` for `targets`; returns the command's id.
  std::uint64_t add(std::uint32_t job, const std::string& kind, const std::string& reason,
                    std::vector<StepKey> targets, std::int64_t now);
  // The commands for the steps a plugin batch came from (each delivered once).
  std::vector<Command> take_for(const std::vector<Event>& batch, std::int64_t now);
  bool empty() const { return pending_.empty(); }

 private:
  struct Pending {
    Command cmd;
    std::uint32_t job = 0;
    std::int64_t created_ns = 0;
    std::vector<StepKey> targets;
  };
  std::vector<Pending> pending_;
  std::uint64_t next_id_ = 1;
};

class Core {
 public:
  Core(Config cfg, Store& store, Clock clock, SlurmControl* slurm);

  Config cfg;
  Store& store;
  Clock clock;
  SlurmControl* slurm;  // null: no Slurm (unit tests of the intake)
  ModuleHost host;
  IntakeCounters counters;
  HeartbeatMonitor monitor;
  CommandQueue commands;
  DigestWorker digests;
  bool in_txn = false;  // a group (or a module's own transaction) is open
  // slurmctld's running jobs and reservations as of the last reconciliation
  // round that changed something (the reconcile module keeps it current).
  struct ClusterView {
    std::vector<SlurmJob> running;
    std::vector<SlurmReservation> reservations;
  } view;
  // job -> the attempt (restart count) a recovery decision covers: an older
  // attempt's end is stale. The recovery module writes it; lifecycle reads it.
  std::map<std::uint32_t, std::uint32_t> decided;

  std::uint64_t token() { return next_token_++; }

  // Run `then` (on the intake thread) once slurmctld's view, as of at most a
  // second ago (`force`: as of now), is applied: a request is answered from
  // Slurm's current view, not one up to reconcile_interval_s old. Without a
  // reconciliation thread, `then` runs at once. The reconcile module provides
  // it (set_refresher).
  using Refresher = std::function<void(std::function<void()>, bool force)>;
  void after_slurm_view(std::function<void()> then, bool force) {
    refresher_ ? refresher_(std::move(then), force) : then();
  }
  void set_refresher(Refresher r) { refresher_ = std::move(r); }

  // A stored event, handed to the modules (now, or after the handler that is
  // running returns).
  void dispatch(const Event& e, std::int64_t seq, std::int64_t now);
  // A controller event on a job's timeline: stored in the open transaction (or
  // one of its own) and dispatched.
  std::int64_t record(std::uint32_t job, EventType type, json attrs, std::int64_t now);  // its seq; 0: not stored
  // Feed one input to the job's state machine; a change is stored with its
  // reason and dispatched to on_state. Opens a transaction if none is open.
  void lifecycle(std::uint32_t job, const LifecycleInput& in, std::int64_t now);
  // Runs `f` in the open transaction, or in one of its own (committed, or
  // rolled back when `f` returns false or the commit fails). False: not committed.
  bool transaction(const char* what, const std::function<bool()>& f);

  // Slurm gave `job`'s id to a new job (ADR 0017): the old job is ended if it
  // had not, the modules forget it, and its rows move to its archived key.
  // Opens a transaction if none is open. False: nothing changed.
  bool retire(std::uint32_t job, const std::string& why, std::int64_t now);

  JobFacts& facts(std::uint32_t job);
  void forget_facts(std::uint32_t job) { facts_.erase(job); }
  // The job's running steps a checkpoint signal goes to: not the batch shell.
  std::vector<StepKey> signal_targets(std::uint32_t job) const;
  // Ask every running step of the job to checkpoint (the plugin delivers the
  // job's checkpoint signal); unavailable when nothing of it runs.
  Result<json> checkpoint_command(std::uint32_t job, const std::string& reason);

 private:
  struct Queued {
    Event event;
    std::int64_t seq;
  };
  std::deque<Queued> queue_;
  bool dispatching_ = false;
  std::uint64_t next_token_ = 1;
  std::unordered_map<std::uint32_t, JobFacts> facts_;
  Refresher refresher_;
};

json targets_json(const std::vector<StepKey>& targets);

}  // namespace vigil::controller
