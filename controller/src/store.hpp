// store.hpp — vigild's durable record: SQLite in WAL mode.
//
// Every accepted event lands in `events` under its 16-byte id (UNIQUE), so a
// replayed event is recognised and has no second effect. Writers batch many
// events into one transaction (group commit); an event is acknowledged to its
// sender only after that transaction commits. Schema changes are numbered
// migrations recorded in `meta.schema_version` (docs/adr/0004-store.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "identity.hpp"
#include "vigil/message.hpp"
#include "vigil/result.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace vigil::controller {

inline constexpr int kSchemaVersion = 9;

struct StoredEvent {
  std::int64_t seq = 0;  // arrival order in this store
  Event event;
  uid_t sender_uid = 0;
  std::int64_t received_ns = 0;
};

struct JobRow {
  JobKey job = 0;  // the Slurm id, or an archived key (identity.hpp)
  uid_t uid = 0;
  std::string user;
  std::string state;
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  std::int64_t events = 0;
  std::string label;
  std::uint32_t restart = 0;
  std::string slurm_state;
  std::uint32_t incarnation = 0;  // 0: the first job with this id
  std::int64_t submit_s = 0;      // slurmctld's submit time, 0: not seen
  std::int64_t result_seq = 0;    // the newest stored result
  std::int64_t dump_seq = 0;      // results up to here are in the dump only (ADR 0018)
  std::int64_t results = 0;       // result values it has had
  std::int64_t timeline_forgotten_ns = 0;  // its events and steps left the store then (ADR 0020); 0: kept
};

enum class InsertOutcome { stored, duplicate };

struct TransitionRow {
  std::string from, to, reason;
  std::int64_t ts_ns = 0;
};

class Store {
 public:
  // read_only: a second connection for readers (HTTP API); WAL lets it read
  // while the intake writes. No migrations; the writer owns the schema.
  static Result<std::unique_ptr<Store>> open(const std::string& path, bool read_only = false);
  ~Store();

  Status begin();
  Status commit();
  void rollback();
  // Inside a transaction. `job_uid` is the owner to record when the event
  // establishes ownership (a start event from Slurm's own processes).
  Result<InsertOutcome> insert(const Event& e, uid_t sender_uid, std::int64_t received_ns);

  std::optional<uid_t> job_owner(JobKey job);
  // Lifecycle (inside a transaction): the job row, its state and restart count,
  // a state change with its reason, what slurmctld last reported.
  Status ensure_job(std::uint32_t job, std::int64_t now_ns);
  Status set_owner(std::uint32_t job, uid_t uid, const std::string& user);  // only if none yet
  std::optional<std::pair<std::string, std::uint32_t>> job_state(std::uint32_t job);
  Status transition(std::uint32_t job, const std::string& from, const std::string& to, const std::string& reason,
                    std::int64_t ts_ns);
  // submit_s: slurmctld's submit time (0: leave as is).
  Status record_slurm_view(std::uint32_t job, const std::string& slurm_state, std::uint32_t restart,
                           std::int64_t submit_s = 0);
  Result<std::vector<TransitionRow>> transitions(JobKey job);
  Result<std::vector<JobRow>> jobs(std::optional<uid_t> only_uid, int limit);
  std::optional<JobRow> job_row(JobKey job);
  std::map<std::string, std::int64_t> jobs_by_state();
  Result<std::vector<StoredEvent>> events(std::optional<JobKey> job, std::int64_t after_seq,
                                          int limit, std::optional<uid_t> only_uid,
                                          std::optional<EventType> only_type = std::nullopt,
                                          bool exclude_type = false,  // then: all but only_type
                                          bool newest = false);       // the newest `limit`, in order
  std::int64_t count_events(JobKey job, EventType type);
  // The newest stored event of `type` for `job`, if any; latest_sql is its
  // query (tests check its plan: an index lookup, not a walk of the timeline).
  std::optional<StoredEvent> latest(JobKey job, EventType type);
  static std::string latest_sql(EventType type);
  // Result values and their dumps (store_results.cpp; schema v6, ADR 0018).
  // (job, ended) for jobs whose dump may be stale: not ended yet, or ended
  // with results newer than their last `results_final` event.
  Result<std::vector<std::pair<std::uint32_t, bool>>> jobs_needing_dump();
  // The dump of `job` (incarnation `incarnation`) holds its results with seq
  // in [from_seq, upto_seq] durably: their values leave the store (inside a
  // transaction). The rows stay, without their value, as replay ids.
  struct DumpMark {
    std::uint32_t job = 0, incarnation = 0;
    std::int64_t from_seq = 0, upto_seq = 0;
  };
  Result<std::int64_t> mark_dumped(const DumpMark& m);  // values dropped
  std::int64_t dump_seq(std::uint32_t job);              // 0: nothing left the store
  // Replay ids of results stored at or before `upto_seq` are deleted (inside a
  // transaction); returns how many.
  Result<std::int64_t> drop_replay_ids(std::int64_t upto_seq);
  // A pruned checkpoint's report (`checkpoint`) and `checkpoint_verified`
  // events, by seq, leave the timeline: its `checkpoint_pruned` event carries
  // what they said (inside a transaction; ADR 0019). Returns how many went.
  Result<std::int64_t> fold_checkpoint(JobKey job, std::int64_t report_seq, std::int64_t verified_seq);
  // Timelines of finished jobs (store_retention.cpp, schema v8, ADR 0020).
  // Jobs that ended (or were archived) before `ended_before_ns`, whose
  // timelines are still stored and whose results are all in their dumps,
  // oldest first.
  Result<std::vector<JobKey>> jobs_to_forget(std::int64_t ended_before_ns, int limit);
  // Deletes at most `max_rows` of the job's events (inside a transaction);
  // once none are left, its steps rows too, and the job row records `now_ns`.
  // Returns the events deleted; `done` says whether the job is finished with.
  Result<std::int64_t> forget_timeline(JobKey job, std::int64_t now_ns, int max_rows, bool& done);
  std::int64_t max_seq();  // the newest event's seq (0: none)
  std::int64_t last_insert_seq() const;  // the seq of the newest insert() that stored an event
  std::int64_t event_count();
  // Steps that started on a node and have not ended there (to re-watch after a
  // restart): job, step, node and the newest heartbeat interval seen.
  struct OpenStep {
    std::uint32_t job = 0, step = 0;
    std::string node;
    int interval_s = 0;
  };
  Result<std::vector<OpenStep>> open_steps();

  // Liveness and usage (store_usage.cpp; schema v3, ADR 0016).
  // One row per (job, step, node): its last sign of life and newest sample.
  struct StepRow {
    std::uint32_t job = 0, step = 0;
    std::string node;
    std::uint32_t restart = 0;
    std::int64_t started_ns = 0, last_ns = 0, ended_ns = 0;  // ended 0: running
    int interval_s = 0;
    std::int64_t heartbeats = 0, max_gap_ms = 0;
    double cpu_s = 0;
    std::int64_t rss_bytes = 0;  // the peak reported
    bool silent = false;  // reported silent or lost, not heard from since
  };
  Status put_step(const StepRow& r);  // inside a transaction
  Result<std::vector<StepRow>> steps(JobKey job);
  std::optional<StepRow> step_row(std::uint32_t job, std::uint32_t step, const std::string& node);
  // Usage of one job on one node in one interval; added to what is there.
  struct UsageRow {
    std::uint32_t job = 0;
    std::string node;
    std::int64_t bucket_s = 0, width_s = 60;  // interval start (epoch s) and length
    double cpu_s = 0, node_s = 0;
    std::int64_t rss_max = 0, samples = 0;
  };
  Status add_usage(const UsageRow& r);  // inside a transaction; also the job's hour (usage_job_hour)
  // CPU-hours and node-hours per `width_s` interval between t1 and t2 (epoch
  // s), of the jobs matching every filter given.
  struct UsageFilter {
    std::optional<std::string> account, user, study;
    std::optional<JobKey> job;
  };
  struct UsagePoint {
    std::int64_t t_s = 0;
    double cpu_hours = 0, node_hours = 0;
  };
  Result<std::vector<UsagePoint>> usage(const UsageFilter& f, std::int64_t t1, std::int64_t t2, std::int64_t width_s);
  static std::string usage_sql(const UsageFilter& f, bool hours);  // its query (plan tests)
  // Minute rows older than `before_s` become hour rows (same totals). Returns rows folded.
  // Only rows from `from_s` on are looked at (where the previous call stopped).
  Result<std::int64_t> compact_usage(std::int64_t before_s, std::int64_t from_s = 0);
  Status set_account(std::uint32_t job, const std::string& account);

  // The fence on a job's superseded attempts (store_fence.cpp; schema v9,
  // docs/adr/0022-fencing-superseded-attempts.md): reports of attempts up to
  // `restart` emitted after `after_ns` (the emitter's clock) are refused.
  struct Fence {
    std::uint32_t restart = 0;
    std::int64_t after_ns = 0;
    std::string node;  // the node in trouble; "" (NODE_FAIL): every node
  };
  Status set_fence(std::uint32_t job, const Fence& f);  // inside a transaction
  std::optional<Fence> fence(std::uint32_t job);        // nullopt: never fenced

  // Job identity (store_identity.cpp; schema v4, docs/adr/0017-job-identity.md).
  // What is recorded about the current job with this id.
  std::optional<KnownJob> known_job(std::uint32_t job);
  bool has_event(const EventId& id);
  // Slurm reused the id: the current job's rows in every table move to its
  // archived key, which is returned, and the id gets a fresh row (next
  // incarnation). Inside a transaction.
  Result<JobKey> retire(std::uint32_t job, std::int64_t now_ns);
  // "1234" (the current job) or "1234.2" to its key; nullopt: no such job.
  std::optional<JobKey> resolve(const JobRef& ref);
  int schema_version();

 private:
  explicit Store(sqlite3* db);
  Status prepare_schema();
  Status flush_job_touches();
  struct JobTouch {
    std::int64_t first_ns = 0, last_ns = 0, count = 0, result_seq = 0, results = 0;
  };
  std::map<std::uint32_t, JobTouch> touches_;  // per transaction
  Status check_schema(const std::string& path);
  Status start_checkpointer(const std::string& path);
  static int on_wal_commit(void* self, sqlite3* db, const char* name, int pages);
  struct Stmts;
  class Checkpointer;
  sqlite3* db_;
  std::unique_ptr<Stmts> st_;
  std::unique_ptr<Checkpointer> ckpt_;  // writer only: WAL checkpoints on their own thread
  int wal_poked_at_ = 0;                // WAL size (pages) when ckpt_ was last poked
  std::string attrs_text_;              // insert(): attrs as JSON text, buffer reused
  // store_usage.cpp's per-group statements, prepared once (put_step and
  // step_row run for every step touched in every group commit).
  sqlite3_stmt* put_step_ = nullptr;
  sqlite3_stmt* step_row_ = nullptr;
  sqlite3_stmt* add_usage_ = nullptr;
  sqlite3_stmt* add_job_hour_ = nullptr;
};

}  // namespace vigil::controller
