// identity.hpp — which job a Slurm job id means (docs/adr/0017-job-identity.md).
//
// Slurm reuses job ids: a slurmctld whose state is lost starts again at
// FirstJobId, and ids wrap at MaxJobId. vigild keys a job's records by a job
// key: the plain id for the newest job with that id (the one Slurm can still
// be talking about), and an archived key, ((incarnation + 1) << 32) | id, for
// each earlier one. When a new job turns up under a known id, the old job's
// rows are re-keyed to its archived key (Store::retire) and the modules forget
// what they held about it (ModuleHost::on_retire).
//
// Pure logic: the two rules that tell "a new job under an old id" from "the
// same job again" (a requeue, a late report), and the names users see.
//   In:  what vigild recorded about the job under that id (KnownJob) and what
//        slurmctld or a node now says.
//   Out: true when it is a different job.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vigil::controller {

// A job's key in the store: its Slurm id (current), or an archived key.
using JobKey = std::uint64_t;
inline constexpr JobKey kArchivedBase = JobKey{1} << 32;

inline constexpr std::uint32_t slurm_id_of(JobKey k) noexcept { return static_cast<std::uint32_t>(k & 0xffffffffu); }
inline constexpr bool is_archived(JobKey k) noexcept { return k >= kArchivedBase; }
inline constexpr JobKey archived_key(std::uint32_t job, std::uint32_t incarnation) noexcept {
  return ((JobKey{incarnation} + 1) << 32) | job;
}

// What vigild holds about the job currently known under an id.
struct KnownJob {
  std::int64_t submit_s = 0;      // slurmctld's submit time (0: not seen yet)
  std::uint32_t restart = 0;      // highest restart count slurmctld reported
  std::string slurm_state;        // what slurmctld last reported ("": never asked)
  std::uint32_t incarnation = 0;  // 0 for the first job with this id, then 1, 2, ...
  bool terminal = false;          // vigild's state is final
  std::int64_t ended_ns = 0;      // when it became final (vigild's clock), 0: not
};

// slurmctld lists the id with this submit time, restart count and state.
// Within one job, Slurm's restart count never goes down, and within one
// attempt (one restart count) its state only moves forward: PENDING, then
// RUNNING (or SUSPENDED), then an end. Going back, to PENDING or RUNNING
// again, takes a requeue, and every requeue raises the count. (The submit
// time is no help on its own: Slurm moves it on a requeue, and again when a
// held job is released.) So a lower count, or the same count with an earlier
// state, is a different job; a changed submit time is required too when both
// are known.
bool slurm_reports_new_job(const KnownJob& known, std::int64_t submit_s, std::uint32_t restart,
                           const std::string& state) noexcept;

// A node reports a batch script starting (job_start) at `started_ns` (its
// clock) in attempt `restart`, for an id whose known job has ended. A late
// report of the old job's start happened before it ended; a new attempt of
// the old job comes with a higher restart count. Anything else started after
// the known job ended, in an attempt it already had: a new job. `skew_ns`
// allows for node clocks a little ahead of vigild's.
bool start_means_new_job(const KnownJob& known, std::int64_t started_ns, std::uint32_t restart,
                         std::int64_t skew_ns = 1'000'000'000) noexcept;

// The name users see and type: "1234" while the first job with an id is the
// current one; once there are others, "1234.0", "1234.1", ... (the plain id
// always means the current one).
std::string job_key_name(JobKey key, std::uint32_t incarnation);

// "1234" or "1234.2" (the CLI's and the HTTP API's job argument); nullopt if
// malformed. The incarnation is nullopt for a plain id (the current job).
struct JobRef {
  std::uint32_t job = 0;
  std::optional<std::uint32_t> incarnation;
};
std::optional<JobRef> parse_job_ref(std::string_view s);

}  // namespace vigil::controller
