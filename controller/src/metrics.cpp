// metrics.cpp — see metrics.hpp.
#include "metrics.hpp"

#include <cstdarg>
#include <cstdio>

namespace vigil::controller {

void Histogram::observe(double seconds) {
  std::size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

Histogram::Copy Histogram::copy() const {
  Copy c;
  for (std::size_t i = 0; i < buckets_.size(); ++i) c.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  c.count = count_.load(std::memory_order_relaxed);
  c.sum = static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
  return c;
}

namespace {

// The one list: name, type, help, and the counter key in the snapshot.
struct CounterDef {
  const char* name;
  const char* key;
  const char* help;
};
constexpr CounterDef kCounters[] = {
    {"vigil_frames_total", "frames", "Frames received on the intake socket."},
    {"vigil_events_stored_total", "events_stored", "Events committed to the store."},
    {"vigil_events_duplicate_total", "events_duplicate", "Events received again (replays) and not stored twice."},
    {"vigil_sessions_opened_total", "sessions_opened", "MUNGE-authenticated sessions opened."},
    {"vigil_commits_total", "commits", "Group-commit transactions."},
    {"vigil_nodes_lost_total", "nodes_lost", "Nodes declared lost by the heartbeat watch."},
    {"vigil_steps_silent_total", "steps_silent", "Steps declared silent on a live node."},
    {"vigil_node_drains_total", "drains", "Lost nodes drained in Slurm."},
    {"vigil_node_drain_failures_total", "drain_failures", "Drain requests slurmctld refused or did not answer."},
    {"vigil_job_transitions_total", "transitions", "Job state-machine transitions."},
    {"vigil_reconcile_rounds_total", "reconcile_rounds", "Reconciliation rounds against slurmctld."},
    {"vigil_reconcile_errors_total", "reconcile_errors", "Reconciliation rounds that failed (slurmctld unreachable)."},
    {"vigil_jobs_retired_total", "jobs_retired", "Earlier jobs archived because Slurm gave their id to a new job."},
    {"vigil_rules_fired_total", "rules_fired", "Early-signal rules that matched a result value."},
    {"vigil_stops_total", "stops", "Jobs stopped (and gathered) by Vigil."},
    {"vigil_outputs_duplicate_total", "outputs_duplicate", "Outputs reported again with content already registered (not recorded twice)."},
    {"vigil_checkpoints_failed_total", "checkpoints_failed", "Checkpoint writes the simulation reported as failed (e.g. disk full)."},
    {"vigil_result_records_total", "result_records", "Result values written to HDF5 dumps."},
    {"vigil_result_refused_total", "result_refused", "Result values a dump refused (shape changed, too many segments)."},
    {"vigil_result_errors_total", "result_errors", "HDF5 dump write errors (values not yet on disk stay in the store)."},
    {"vigil_result_rebuilds_total", "result_rebuilds", "HDF5 dumps (re)opened or rebuilt and completed from the store."},
    {"vigil_result_syncs_total", "result_syncs", "HDF5 dumps synced to disk (their values may then leave the store)."},
    {"vigil_result_resumed_total", "result_resumed", "HDF5 dumps reopened after a restart or an error, cut back to their last sync."},
    {"vigil_result_lost_total", "result_lost", "HDF5 dumps that could not be reopened (set aside as .damaged; values up to their last sync lost)."},
    {"vigil_results_pruned_total", "results_pruned", "Result values dropped from the store because their dump holds them on disk."},
    {"vigil_results_finalised_total", "results_finalised", "HDF5 dumps finalised with digests."},
    {"vigil_timelines_forgotten_total", "timelines_forgotten", "Finished jobs whose timelines left the store after timeline_keep_days."},
    {"vigil_timeline_events_deleted_total", "timeline_events_deleted", "Events of finished jobs deleted by timeline retention."},
};

void line(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void line(std::string& out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  out += buf;
  out += '\n';
}

std::string label_value(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

}  // namespace

std::string render_prometheus(const IntakeSnapshot& s, const std::map<std::string, std::int64_t>& jobs_by_state) {
  std::string out;
  for (const auto& c : kCounters) {
    auto it = s.counters.find(c.key);
    line(out, "# HELP %s %s", c.name, c.help);
    line(out, "# TYPE %s counter", c.name);
    line(out, "%s %llu", c.name, static_cast<unsigned long long>(it == s.counters.end() ? 0 : it->second));
  }
  line(out, "# HELP vigil_rejected_total Frames, credentials and events rejected, by reason.");
  line(out, "# TYPE vigil_rejected_total counter");
  for (const auto& [reason, n] : s.rejected)
    line(out, "vigil_rejected_total{reason=\"%s\"} %llu", label_value(reason).c_str(), static_cast<unsigned long long>(n));
  line(out, "# HELP vigil_sessions Open authenticated sessions.");
  line(out, "# TYPE vigil_sessions gauge");
  line(out, "vigil_sessions %llu", static_cast<unsigned long long>(s.sessions));
  line(out, "# HELP vigil_watched_steps Steps the heartbeat watch follows.");
  line(out, "# TYPE vigil_watched_steps gauge");
  line(out, "vigil_watched_steps %llu", static_cast<unsigned long long>(s.watched_steps));
  line(out, "# HELP vigil_intake_queue_frames Frames drained in the last intake loop turn (queue depth).");
  line(out, "# TYPE vigil_intake_queue_frames gauge");
  line(out, "vigil_intake_queue_frames %llu", static_cast<unsigned long long>(s.last_turn_frames));
  line(out, "# HELP vigil_intake_queue_age_seconds Longest receipt-to-ack wait in the last turn (queue age).");
  line(out, "# TYPE vigil_intake_queue_age_seconds gauge");
  line(out, "vigil_intake_queue_age_seconds %.6f", s.oldest_frame_wait_s);
  line(out, "# HELP vigil_ack_latency_seconds Receipt of a batch to its ACK (after the commit).");
  line(out, "# TYPE vigil_ack_latency_seconds histogram");
  std::uint64_t cum = 0;
  for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    cum += s.ack_latency.buckets[i];
    line(out, "vigil_ack_latency_seconds_bucket{le=\"%g\"} %llu", Histogram::kBounds[i], static_cast<unsigned long long>(cum));
  }
  cum += s.ack_latency.buckets.back();
  line(out, "vigil_ack_latency_seconds_bucket{le=\"+Inf\"} %llu", static_cast<unsigned long long>(cum));
  line(out, "vigil_ack_latency_seconds_sum %.6f", s.ack_latency.sum);
  line(out, "vigil_ack_latency_seconds_count %llu", static_cast<unsigned long long>(s.ack_latency.count));
  line(out, "# HELP vigil_node_heartbeat_age_seconds Time since the newest sign of life from a node with running steps.");
  line(out, "# TYPE vigil_node_heartbeat_age_seconds gauge");
  for (const auto& n : s.nodes)
    line(out, "vigil_node_heartbeat_age_seconds{node=\"%s\"} %.3f", label_value(n.node).c_str(), n.heartbeat_age_s);
  line(out, "# HELP vigil_node_lost Whether the heartbeat watch considers the node lost (1) or not (0).");
  line(out, "# TYPE vigil_node_lost gauge");
  for (const auto& n : s.nodes) line(out, "vigil_node_lost{node=\"%s\"} %d", label_value(n.node).c_str(), n.lost ? 1 : 0);
  line(out, "# HELP vigil_jobs Jobs in vigild's store, by lifecycle state.");
  line(out, "# TYPE vigil_jobs gauge");
  for (const auto& [state, n] : jobs_by_state)
    line(out, "vigil_jobs{state=\"%s\"} %lld", label_value(state).c_str(), static_cast<long long>(n));
  line(out, "# HELP vigil_uptime_seconds Seconds since vigild started.");
  line(out, "# TYPE vigil_uptime_seconds gauge");
  line(out, "vigil_uptime_seconds %lld", static_cast<long long>(s.uptime_s));
  return out;
}

}  // namespace vigil::controller
