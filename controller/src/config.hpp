// config.hpp — vigild's configuration: parsed from YAML, validated, then swapped.
//
// Unknown keys are errors (a typo must not silently fall back to a default).
// Reload parses into a fresh Config and only replaces the live one if the whole
// file validates; a bad reload leaves the old config in force.
#pragma once

#include <cstdint>
#include <string>

#include "vigil/result.hpp"

namespace vigil::controller {

struct Config {
  std::string listen = "tcp://127.0.0.1:7810";  // ZeroMQ intake (plugin, SDK, CLI)
  std::string http_listen = "127.0.0.1:7811";   // HTTP/JSON API and /metrics; "" = off
  std::string munge_socket;                     // empty: libmunge default
  std::string database = "/var/lib/vigil/vigild.db";
  std::string admin_group = "vigil-admins";     // members see and act on every job
  std::string log_level = "info";
  bool log_json = false;
  int session_ttl_s = 3600;                     // re-authenticate at least hourly
  int max_sessions_per_uid = 256;               // bounds memory per (possibly hostile) user
  // Root's sessions are Slurm's own processes: one relay per node (ADR 0014),
  // so a cluster of N nodes needs N of them at once. With the per-user cap a
  // 1 000-node cluster re-authenticated every relay on every batch
  // (docs/research/scale-bench.md); root gets a cap of its own.
  int max_root_sessions = 100000;
  // A session sending more events than this per second (averaged over a 2 s
  // burst allowance) gets `rate_limited` and must resend later: one flooding
  // sender cannot take the store from everybody else. 0 = unlimited.
  int max_events_per_s_per_session = 50000;
  int heartbeat_missed = 2;                     // missed intervals before a step/node is silent/lost
  bool drain_on_node_loss = false;              // drain a lost node in Slurm, with a reason
  int restart_grace_s = 10;                     // after a restart, silence counts only after this
  int reconcile_interval_s = 5;                 // poll slurmctld (incrementally) this often; 0: off
  // Result dumps (HDF5, SWMR): <results_dir>/<results_pattern>; "" = no dumps
  // (values are still stored and `vigil tail` still works).
  std::string results_dir = "/var/lib/vigil/results";
  std::string results_pattern = "{user}/{job}.h5";  // {user} {uid} {job}
  int stop_gather_timeout_s = 60;               // stop --gather: wait this long for a checkpoint
  // Automatic recovery (ADR 0012): on node loss / heartbeat loss / NODE_FAIL,
  // requeue the job from its newest verified checkpoint, or fail it once its
  // retry budget is spent. Marks lost nodes DOWN in Slurm to do so.
  bool recovery = true;
  int default_retries = 3;                      // when the job gives no --vigil-retries
  double retry_backoff_s = 1.0;                 // first retry; doubles per retry
  double retry_backoff_max_s = 60.0;
  // Checkpoint strategies and retention (ADR 0013).
  int checkpoint_before_end_s = 300;            // ask before the time limit (at most half of it); 0: off
  int checkpoint_before_maintenance_s = 600;    // ask before a MAINT reservation on the job's nodes; 0: off
  bool checkpoint_on_preemption = true;         // ask as soon as slurmctld preempts the job
  int protect_fresh_s = 900;                    // a verified checkpoint this young is "fresh"
  int protect_wait_s = 120;                     // a protected job's time to checkpoint before maintenance
  int protect_min_time_limit_min = 0;           // protect every job this long (0: only --vigil-protect)
  int checkpoint_keep = 0;                      // keep each job's newest K verified checkpoints; 0: all
  std::uint64_t checkpoint_budget_mb_per_user = 0;  // the user's checkpoints beyond this are pruned; 0: none
  // Usage ledger (ADR 0016): per-minute rows per job and node are folded into
  // hourly rows after this many days (a 500-node cluster: ~720 000 minute
  // rows a day, ~12 000 hourly rows).
  int usage_minute_days = 2;
  // Result values in the store (ADR 0018): the dump files are synced to disk
  // this often, and the values they then hold durably leave the store; the
  // ids stay this many hours longer so a late replay is still recognised.
  int results_sync_s = 60;
  int results_replay_h = 1;
  // A finished job's events and steps leave the store this many days after
  // it ended (ADR 0020; 0: never). Its job row, transitions and usage stay.
  int timeline_keep_days = 90;
};

Result<Config> parse_config(const std::string& yaml_text);
Result<Config> load_config(const std::string& path);

}  // namespace vigil::controller
