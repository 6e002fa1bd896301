// lifecycle.cpp — see lifecycle.hpp.
#include "lifecycle.hpp"

namespace vigil::controller {

const char* job_state_name(JobState s) noexcept {
  switch (s) {
    case JobState::submitted: return "SUBMITTED";
    case JobState::pending: return "PENDING";
    case JobState::starting: return "STARTING";
    case JobState::running: return "RUNNING";
    case JobState::degraded: return "DEGRADED";
    case JobState::recovering: return "RECOVERING";
    case JobState::completed: return "COMPLETED";
    case JobState::failed: return "FAILED";
    case JobState::cancelled: return "CANCELLED";
    case JobState::stopped: return "STOPPED";
  }
  return "UNKNOWN";
}

std::optional<JobState> job_state_from_name(const std::string& s) {
  for (int i = 0; i <= static_cast<int>(JobState::stopped); ++i)
    if (s == job_state_name(static_cast<JobState>(i))) return static_cast<JobState>(i);
  return std::nullopt;
}

bool is_terminal(JobState s) noexcept {
  return s == JobState::completed || s == JobState::failed || s == JobState::cancelled || s == JobState::stopped;
}

std::optional<Transition> next_state(JobState from, const LifecycleInput& in) {
  using K = LifecycleInput::Kind;
  using S = JobState;
  auto go = [&](S to, const std::string& why) -> std::optional<Transition> {
    if (to == from) return std::nullopt;
    return Transition{to, in.detail.empty() ? why : why + ": " + in.detail};
  };
  if (in.kind == K::requeued) return go(S::recovering, "requeued by Slurm");
  if (is_terminal(from)) {
    const bool ending = in.kind == K::ended_ok || in.kind == K::ended_failed || in.kind == K::cancelled;
    if (!(in.authoritative && ending && (from == S::failed || from == S::completed))) return std::nullopt;
  }
  switch (in.kind) {
    case K::submitted:
      return std::nullopt;  // submission is where every job starts
    case K::slurm_pending:
      if (from == S::submitted) return go(S::pending, "queued in Slurm");
      return std::nullopt;
    case K::job_started:
      if (from == S::submitted || from == S::pending || from == S::recovering) return go(S::starting, "batch step started");
      return std::nullopt;
    case K::task_started:
    case K::slurm_running:
      if (from == S::submitted || from == S::pending || from == S::starting || from == S::recovering)
        return go(S::running, in.kind == K::task_started ? "tasks running" : "running in Slurm");
      return std::nullopt;
    case K::trouble:
      if (from == S::running || from == S::starting) return go(S::degraded, "lost contact");
      return std::nullopt;
    case K::all_clear:
      if (from == S::degraded) return go(S::running, "contact restored");
      return std::nullopt;
    case K::ended_ok:
      return go(S::completed, "finished");
    case K::ended_failed:
      return go(S::failed, "failed");
    case K::cancelled:
      return go(S::cancelled, "cancelled");
    case K::stopped:
      return go(S::stopped, "stopped and gathered");
    case K::requeued:
      break;  // handled above
  }
  return std::nullopt;
}

}  // namespace vigil::controller
