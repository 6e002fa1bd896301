// lifecycle.hpp — the state machine of one simulation (job), as pure logic.
//
//   SUBMITTED ─▶ PENDING ─▶ STARTING ─▶ RUNNING ⇄ DEGRADED
//        │          │          │           │          │
//        │          └──────────┴───────────┴──────────┴─▶ COMPLETED | FAILED | CANCELLED
//        │                                  │                         ▲
//        └──────────────────────────────────┴─▶ RECOVERING (requeued) ─┘ (and back to PENDING/STARTING)
//   STOPPED: ended by Vigil's stop-and-gather.
//
// Inputs come from plugin events (what the nodes saw) and from reconciliation
// with slurmctld (what Slurm knows). next() says where a job goes and why; a
// transition that makes no sense (e.g. a late heartbeat after COMPLETED) is
// ignored. Terminal states are left only through a requeue (RECOVERING), or
// refined by slurmctld's verdict (see LifecycleInput::authoritative).
// docs/adr/0007-lifecycle-and-reconciliation.md.
#pragma once

#include <optional>
#include <string>

namespace vigil::controller {

enum class JobState { submitted, pending, starting, running, degraded, recovering, completed, failed, cancelled, stopped };
const char* job_state_name(JobState s) noexcept;
std::optional<JobState> job_state_from_name(const std::string& s);
bool is_terminal(JobState s) noexcept;

struct LifecycleInput {
  enum class Kind {
    submitted,      // submit intent seen
    slurm_pending,  // slurmctld: PENDING (restart count distinguishes a requeue)
    job_started,    // batch step began on its node
    task_started,   // a task of the job began
    trouble,        // a step went silent or a node was lost
    all_clear,      // every silent step/node of the job spoke again
    slurm_running,  // slurmctld: RUNNING
    ended_ok,       // job_end with exit 0, or slurmctld COMPLETED
    ended_failed,   // job_end non-zero / slurmctld FAILED, TIMEOUT, NODE_FAIL, OOM, BOOT_FAIL, DEADLINE
    cancelled,      // slurmctld CANCELLED / PREEMPTED
    requeued,       // slurmctld shows a higher restart count, or PENDING after running
    stopped,        // Vigil's stop-and-gather ended the job
  } kind;
  std::string detail;  // what happened, for the reason text
  // From slurmctld (reconciliation): Slurm has the last word on how a job
  // ended, so it may refine an ending the nodes reported (FAILED -> CANCELLED
  // after scancel's SIGTERM, say). Vigil's own STOPPED is never overridden.
  bool authoritative = false;
};

struct Transition {
  JobState to;
  std::string reason;
};

std::optional<Transition> next_state(JobState from, const LifecycleInput& in);

}  // namespace vigil::controller
