// module.hpp — vigild's modules and the one table they are called through.
//
// The intake is the front door (frames, sessions, MUNGE, authorisation, rate
// limits, group commit, ACKs); every other concern is a module (modules/*.cpp)
// that registers callbacks here, the way flux-core's job-manager calls its
// jobtap plugins (docs/adr/0015-modules.md). A new policy is a new module, not a
// new branch in an old one.
//
// Callbacks, and when the host calls them (all on the intake thread):
//   on_validate       every authorised event a client sends, before it is
//                     stored (replays too); may refuse it with a reason, which
//                     the sender gets in its ACK (a policy's `job.validate`).
//   on_event(types)   each stored event of those types, in arrival order, inside
//                     the transaction that stores it, so whatever a module
//                     writes in response commits (or rolls back) with its
//                     cause. Events modules record are dispatched the same way,
//                     after the handler that recorded them returns (a queue,
//                     not recursion).
//   on_state(to)      a job changed state (nullopt: every change), in the same
//                     transaction as the change.
//   on_precommit      just before the group (or a module's transaction)
//                     commits: rows a module aggregated over the group
//                     (liveness, usage) are written once; an error aborts it.
//   on_absorb(types)  events of these types are not stored as rows; they are
//                     acknowledged and dispatched (seq 0), and the modules keep
//                     what matters of them (heartbeats: ADR 0016).
//   on_commit         after the group commit: effects outside the store (HDF5
//                     appends) that must only follow durable events.
//   on_abort          the group rolled back: forget what on_event staged.
//   on_slurm_view     slurmctld's changed jobs (whole table on change), applied
//                     by the reconciliation module, in its transaction.
//   on_tick           once per loop turn (≥ every 100 ms), outside any
//                     transaction: timers, deadlines, work that calls Slurm.
//   on_request(op)    a client's REQUEST; the handler answers through Reply,
//                     now or later (restart_from waits for a digest).
//   on_digest(kind)   a DigestWorker result (checkpoint digests, deletions).
//   on_retire         Slurm gave this job's id to a new job (ADR 0017): write
//                     now whatever is staged for the old job, then forget every
//                     bit of state held under the id. Called inside the
//                     transaction, before the old job's rows are re-keyed.
//
// A handler that fails logs and counts; it never throws across the table and
// never stops the other modules. Time is the injected Core::clock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ledger.hpp"
#include "lifecycle.hpp"
#include "queries.hpp"
#include "slurm_api.hpp"
#include "store.hpp"

namespace vigil::controller {

// The answer to one request; may be kept and called later, at most once.
using Reply = std::function<void(Result<json>)>;

struct StateChange {
  std::uint32_t job = 0;
  JobState from = JobState::submitted, to = JobState::submitted;
  std::string reason;
};

class ModuleHost {
 public:
  // `seq`: the event's sequence number in the store.
  using ValidateFn = std::function<std::optional<Error>(const Event&, uid_t sender, std::int64_t now)>;
  using EventFn = std::function<void(const Event&, std::int64_t seq, std::int64_t now)>;
  using StateFn = std::function<void(const StateChange&, std::int64_t now)>;
  using TickFn = std::function<void(std::int64_t now)>;
  using VoidFn = std::function<void()>;
  using SlurmViewFn = std::function<void(const std::vector<SlurmJob>& changed, std::int64_t now)>;
  using RequestFn = std::function<void(const Caller&, const json& req, Reply)>;
  using DigestFn = std::function<void(DigestWorker::Done&, std::int64_t now)>;
  using RetireFn = std::function<void(std::uint32_t job, std::int64_t now)>;

  void on_validate(ValidateFn fn) { validate_.push_back(std::move(fn)); }
  void on_event(std::initializer_list<EventType> types, EventFn fn);
  void on_state(std::optional<JobState> to, StateFn fn);
  void on_precommit(std::function<Status()> fn) { precommit_.push_back(std::move(fn)); }
  void on_absorb(std::initializer_list<EventType> types) { absorbed_.insert(types.begin(), types.end()); }
  void on_commit(VoidFn fn) { commit_.push_back(std::move(fn)); }
  void on_abort(VoidFn fn) { abort_.push_back(std::move(fn)); }
  void on_slurm_view(SlurmViewFn fn) { view_.push_back(std::move(fn)); }
  void on_tick(TickFn fn) { tick_.push_back(std::move(fn)); }
  void on_request(const std::string& op, RequestFn fn);
  void on_digest(DigestWorker::Task::Kind kind, DigestFn fn) { digest_[kind] = std::move(fn); }
  void on_retire(RetireFn fn) { retire_.push_back(std::move(fn)); }

  // Dispatch (called by Core and the intake).
  std::optional<Error> validate(const Event& e, uid_t sender, std::int64_t now);
  void event(const Event& e, std::int64_t seq, std::int64_t now);
  bool wants(EventType t) const { return event_.count(t) != 0; }
  void state(const StateChange& c, std::int64_t now);
  Status precommit();
  bool absorbs(EventType t) const { return absorbed_.count(t) != 0; }
  void committed();
  void aborted();
  void slurm_view(const std::vector<SlurmJob>& changed, std::int64_t now);
  void tick(std::int64_t now);
  bool request(const std::string& op, const Caller& who, const json& req, Reply reply);  // false: unknown op
  void digest(DigestWorker::Done& d, std::int64_t now);
  void retiring(std::uint32_t job, std::int64_t now);
  std::vector<std::string> ops() const;

 private:
  std::vector<ValidateFn> validate_;
  std::map<EventType, std::vector<EventFn>> event_;
  std::vector<std::pair<std::optional<JobState>, StateFn>> state_;
  std::vector<std::function<Status()>> precommit_;
  std::set<EventType> absorbed_;
  std::vector<VoidFn> commit_, abort_;
  std::vector<SlurmViewFn> view_;
  std::vector<TickFn> tick_;
  std::map<std::string, RequestFn> request_;
  std::map<DigestWorker::Task::Kind, DigestFn> digest_;
  std::vector<RetireFn> retire_;
};

// Every module: built with the Core, registers its callbacks in its
// constructor, owns its own state. name() is used in logs.
class Module {
 public:
  virtual ~Module() = default;
  virtual const char* name() const = 0;
};

}  // namespace vigil::controller
