// config.cpp — strict YAML loading (see config.hpp).
#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include "dump_writer.hpp"

#include <fstream>
#include <set>
#include <sstream>

namespace vigil::controller {
namespace {

Error cfg_error(const std::string& m) { return make_error(Errc::malformed, "config: " + m); }

}  // namespace

Result<Config> parse_config(const std::string& text) {
  Config c;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return cfg_error(std::string("not valid YAML: ") + e.what());
  }
  if (root.IsNull()) return c;  // empty file: all defaults
  if (!root.IsMap()) return cfg_error("top level must be a mapping");
  static const std::set<std::string> known = {"listen",      "munge_socket", "database",
                                              "admin_group", "log_level",    "log_json",
                                              "session_ttl_s", "max_sessions_per_uid", "max_root_sessions",
                                              "heartbeat_missed", "drain_on_node_loss",
                                              "reconcile_interval_s", "http_listen", "restart_grace_s",
                                              "max_events_per_s_per_session", "results_dir",
                                              "results_pattern", "stop_gather_timeout_s", "recovery",
                                              "default_retries", "retry_backoff_s", "retry_backoff_max_s",
                                              "checkpoint_before_end_s", "checkpoint_before_maintenance_s",
                                              "checkpoint_on_preemption", "protect_fresh_s", "protect_wait_s",
                                              "protect_min_time_limit_min", "checkpoint_keep",
                                              "checkpoint_budget_mb_per_user", "usage_minute_days",
                                              "results_sync_s", "results_replay_h", "timeline_keep_days"};
  try {
    for (const auto& kv : root) {
      const auto key = kv.first.as<std::string>();
      if (!known.count(key)) return cfg_error("unknown key '" + key + "'");
      const YAML::Node& v = kv.second;
      if (key == "listen") c.listen = v.as<std::string>();
      else if (key == "http_listen") c.http_listen = v.as<std::string>();
      else if (key == "munge_socket") c.munge_socket = v.as<std::string>();
      else if (key == "database") c.database = v.as<std::string>();
      else if (key == "admin_group") c.admin_group = v.as<std::string>();
      else if (key == "log_level") c.log_level = v.as<std::string>();
      else if (key == "log_json") c.log_json = v.as<bool>();
      else if (key == "session_ttl_s") c.session_ttl_s = v.as<int>();
      else if (key == "max_sessions_per_uid") c.max_sessions_per_uid = v.as<int>();
      else if (key == "max_root_sessions") c.max_root_sessions = v.as<int>();
      else if (key == "heartbeat_missed") c.heartbeat_missed = v.as<int>();
      else if (key == "drain_on_node_loss") c.drain_on_node_loss = v.as<bool>();
      else if (key == "reconcile_interval_s") c.reconcile_interval_s = v.as<int>();
      else if (key == "restart_grace_s") c.restart_grace_s = v.as<int>();
      else if (key == "max_events_per_s_per_session") c.max_events_per_s_per_session = v.as<int>();
      else if (key == "results_dir") c.results_dir = v.IsNull() ? std::string() : v.as<std::string>();
      else if (key == "results_pattern") c.results_pattern = v.as<std::string>();
      else if (key == "stop_gather_timeout_s") c.stop_gather_timeout_s = v.as<int>();
      else if (key == "recovery") c.recovery = v.as<bool>();
      else if (key == "default_retries") c.default_retries = v.as<int>();
      else if (key == "retry_backoff_s") c.retry_backoff_s = v.as<double>();
      else if (key == "retry_backoff_max_s") c.retry_backoff_max_s = v.as<double>();
      else if (key == "checkpoint_before_end_s") c.checkpoint_before_end_s = v.as<int>();
      else if (key == "checkpoint_before_maintenance_s") c.checkpoint_before_maintenance_s = v.as<int>();
      else if (key == "checkpoint_on_preemption") c.checkpoint_on_preemption = v.as<bool>();
      else if (key == "protect_fresh_s") c.protect_fresh_s = v.as<int>();
      else if (key == "protect_wait_s") c.protect_wait_s = v.as<int>();
      else if (key == "protect_min_time_limit_min") c.protect_min_time_limit_min = v.as<int>();
      else if (key == "checkpoint_keep") c.checkpoint_keep = v.as<int>();
      else if (key == "checkpoint_budget_mb_per_user") c.checkpoint_budget_mb_per_user = v.as<std::uint64_t>();
      else if (key == "usage_minute_days") c.usage_minute_days = v.as<int>();
      else if (key == "results_sync_s") c.results_sync_s = v.as<int>();
      else if (key == "results_replay_h") c.results_replay_h = v.as<int>();
      else if (key == "timeline_keep_days") c.timeline_keep_days = v.as<int>();
    }
  } catch (const YAML::Exception& e) {
    return cfg_error(std::string("bad value: ") + e.what());
  }
  if (c.listen.rfind("tcp://", 0) != 0 && c.listen.rfind("ipc://", 0) != 0)
    return cfg_error("listen must be a tcp:// or ipc:// endpoint, got '" + c.listen + "'");
  if (c.database.empty()) return cfg_error("database must not be empty");
  if (!c.http_listen.empty()) {
    const auto colon = c.http_listen.rfind(':');
    const std::string port = colon == std::string::npos ? "" : c.http_listen.substr(colon + 1);
    if (colon == 0 || port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) > 65535)
      return cfg_error("http_listen must be host:port (or empty to disable), got '" + c.http_listen + "'");
  }
  static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
  if (!levels.count(c.log_level)) return cfg_error("log_level must be one of trace|debug|info|warn|error");
  if (c.session_ttl_s < 60 || c.session_ttl_s > 86400) return cfg_error("session_ttl_s must be in [60, 86400]");
  if (c.max_sessions_per_uid < 1) return cfg_error("max_sessions_per_uid must be >= 1");
  if (c.max_root_sessions < 1) return cfg_error("max_root_sessions must be >= 1");
  if (c.max_events_per_s_per_session < 0) return cfg_error("max_events_per_s_per_session must be >= 0");
  if (c.restart_grace_s < 0 || c.restart_grace_s > 3600) return cfg_error("restart_grace_s must be in [0, 3600]");
  if (c.reconcile_interval_s < 0 || c.reconcile_interval_s > 3600)
    return cfg_error("reconcile_interval_s must be in [0, 3600]");
  if (!c.results_dir.empty() && c.results_dir.front() != '/')
    return cfg_error("results_dir must be an absolute path (or empty to disable dumps)");
  if (auto p = check_dump_pattern(c.results_pattern); !p) return cfg_error(p.error().message);
  if (c.default_retries < 0 || c.default_retries > 100) return cfg_error("default_retries must be in [0, 100]");
  if (!(c.retry_backoff_s >= 0 && c.retry_backoff_s <= 3600) || !(c.retry_backoff_max_s >= c.retry_backoff_s) ||
      c.retry_backoff_max_s > 86400)
    return cfg_error("retry_backoff_s must be in [0, 3600] and retry_backoff_max_s in [retry_backoff_s, 86400]");
  if (c.stop_gather_timeout_s < 1 || c.stop_gather_timeout_s > 3600)
    return cfg_error("stop_gather_timeout_s must be in [1, 3600]");
  auto in_range = [](int v, int lo, int hi) { return v >= lo && v <= hi; };
  if (!in_range(c.checkpoint_before_end_s, 0, 86400) || !in_range(c.checkpoint_before_maintenance_s, 0, 7 * 86400))
    return cfg_error("checkpoint_before_end_s must be in [0, 86400] and checkpoint_before_maintenance_s in [0, 604800]");
  if (!in_range(c.protect_fresh_s, 1, 7 * 86400) || !in_range(c.protect_wait_s, 1, 86400))
    return cfg_error("protect_fresh_s must be in [1, 604800] and protect_wait_s in [1, 86400]");
  if (!in_range(c.protect_min_time_limit_min, 0, 525600))
    return cfg_error("protect_min_time_limit_min must be in [0, 525600] (minutes; 0: off)");
  if (!in_range(c.checkpoint_keep, 0, 10000)) return cfg_error("checkpoint_keep must be in [0, 10000] (0: keep all)");
  if (!in_range(c.usage_minute_days, 1, 3650))
    return cfg_error("usage_minute_days must be in [1, 3650] (days of per-minute usage before hourly)");
  if (!in_range(c.results_sync_s, 1, 86400))
    return cfg_error("results_sync_s must be in [1, 86400] (seconds between syncs of the result dumps)");
  if (!in_range(c.results_replay_h, 1, 8760))
    return cfg_error("results_replay_h must be in [1, 8760] (hours a pruned result's id is kept)");
  if (!in_range(c.timeline_keep_days, 0, 36500))
    return cfg_error("timeline_keep_days must be in [0, 36500] (days a finished job's timeline is kept; 0: forever)");
  if (c.checkpoint_budget_mb_per_user > (1ull << 40))
    return cfg_error("checkpoint_budget_mb_per_user must be at most 2^40 (0: no budget)");
  if (c.heartbeat_missed < 1 || c.heartbeat_missed > 10) return cfg_error("heartbeat_missed must be in [1, 10]");
  return c;
}

Result<Config> load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(Errc::io, "config: cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str());
}

}  // namespace vigil::controller
