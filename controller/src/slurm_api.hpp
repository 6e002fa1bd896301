// slurm_api.hpp — the few slurmctld calls vigild makes, through libslurm.
//
// Kept behind an interface so policy and detection code never link libslurm
// and tests/simulators can supply their own cluster view.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "vigil/result.hpp"

namespace vigil::controller {

// What slurmctld says about one job (the subset reconciliation needs).
struct SlurmJob {
  std::uint32_t job = 0;
  std::string state;        // PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...
  uid_t uid = 0;
  std::uint32_t restart = 0;
  std::int32_t exit_code = 0;  // wait() status of the batch script
  std::string nodes;
  std::vector<std::string> node_names;  // `nodes` expanded
  std::time_t start_time = 0, end_time = 0;  // running: when it started and when its time limit ends
  std::time_t preempt_time = 0;              // slurmctld began preempting it (0: no)
  // What was asked for at submission (for the job's `submit` event).
  std::string name, account, partition, tres_req;
  std::uint32_t req_nodes = 0, req_cpus = 0, req_tasks = 0, time_limit_min = 0;
  std::uint64_t mem_per_node_mb = 0;
  std::time_t submit_time = 0;
};

struct SlurmJobs {
  bool changed = true;        // false: nothing changed since `since` (cheap answer)
  std::time_t last_update = 0;
  std::vector<SlurmJob> jobs;
};

// A reservation as slurmctld describes it (the subset checkpoint strategies need).
struct SlurmReservation {
  std::string name;
  std::time_t start_time = 0, end_time = 0;
  bool maintenance = false;              // flag MAINT
  std::vector<std::string> node_names;   // empty: ALL nodes
};

class SlurmControl {
 public:
  virtual ~SlurmControl() = default;
  // Jobs changed since `since` (0: all). Incremental: slurmctld answers "no
  // change" without sending the job table when nothing changed.
  virtual Result<SlurmJobs> load_jobs(std::time_t since) = 0;
  // Drain a node with a reason (shown by `sinfo -R`).
  virtual Status drain_node(const std::string& node, const std::string& reason) = 0;
  // Cancel a job (stop-and-gather), as `scancel` would.
  virtual Status cancel_job(std::uint32_t job) = 0;
  // Recovery: mark a lost node DOWN (Slurm then ends the job's steps there at
  // once instead of waiting SlurmdTimeout), requeue a batch job (done if Slurm
  // already requeued it), and keep it off the given nodes.
  virtual Status down_node(const std::string& node, const std::string& reason) = 0;
  virtual Status requeue_job(std::uint32_t job) = 0;
  // ... and, with `release`, make it eligible now (Slurm delays a requeued job
  // by cred_expire).
  virtual Status exclude_nodes(std::uint32_t job, const std::string& nodes, bool release) = 0;
  // Every reservation (checkpoints before maintenance, ADR 0013).
  virtual Result<std::vector<SlurmReservation>> load_reservations() = 0;
  // slurm.conf KillWait: how long a step's processes may outlive an abort
  // (srun waits KillWait + 2 s for tasks on nodes it has not heard from).
  virtual Result<int> kill_wait_s() = 0;
};

// The real one: libslurm, configured by SLURM_CONF or the default slurm.conf.
class LibSlurmControl : public SlurmControl {
 public:
  LibSlurmControl();
  Status drain_node(const std::string& node, const std::string& reason) override;
  Result<SlurmJobs> load_jobs(std::time_t since) override;
  Status cancel_job(std::uint32_t job) override;
  Status down_node(const std::string& node, const std::string& reason) override;
  Status requeue_job(std::uint32_t job) override;
  Status exclude_nodes(std::uint32_t job, const std::string& nodes, bool release) override;
  Result<std::vector<SlurmReservation>> load_reservations() override;
  Result<int> kill_wait_s() override;
};

}  // namespace vigil::controller
