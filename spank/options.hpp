// options.hpp — the plugin's user options and site arguments, as pure logic.
//
// Kept free of spank.h so unit tests exercise every accepted and rejected form.
// Error messages name the option and its accepted form: sbatch prints them
// verbatim when it rejects a submission.
#pragma once

#include <csignal>
#include <cstddef>
#include <string>
#include <vector>

#include "vigil/result.hpp"

namespace vigil::spank {

// Plugstack arguments: `optional vigil.so endpoint=tcp://head:7810 min_heartbeat=2 ...`
struct SiteConfig {
  std::string endpoint = "tcp://127.0.0.1:7810";
  std::string munge_socket;                  // empty: libmunge default
  std::string spool_dir = "/var/spool/vigil";
  int min_heartbeat_s = 1;                   // users cannot go below this
  int default_heartbeat_s = 5;
  int max_retries = 10;
  std::size_t spool_max_bytes = 64u << 20;   // per node; beyond it events are counted as dropped
  int exit_flush_ms = 500;                   // longest one round trip to vigild (bounds the exit hook)
  std::string transport;                     // vigil_transport.so; empty: next to vigil.so
};

struct JobOptions {
  int heartbeat_s = 0;            // 0: site default
  int checkpoint_s = 0;           // 0: no periodic checkpoint signal
  int checkpoint_signal = SIGUSR1;
  bool results = true;            // partial-result dumps on/off
  std::string results_dir;        // empty: site default
  int retries = -1;               // -1: site/vigild default
  bool protect = false;           // long-run protection
  int keep_checkpoints = -1;      // newest verified checkpoints vigild keeps; -1: site default, 0: all
  std::string label;              // scenario / study label
  std::string rules;              // early-signal rules (vigil/rules.hpp grammar), validated
  int effective_heartbeat(const SiteConfig& s) const;
};

// Parses plugstack arguments. Bad arguments never fail: each yields a warning
// and the default stays in force.
SiteConfig parse_site_args(const std::vector<std::string>& args, std::vector<std::string>& warnings);

struct OptionSpec {
  const char* name;     // without the leading "--"
  const char* arginfo;  // shown in --help; null for flags
  const char* usage;
};
const std::vector<OptionSpec>& option_specs();

// Applies one option value (optarg null for flags). The message of an error
// starts with "--vigil-<name>:" and says what is accepted.
Status apply_option(JobOptions& o, const std::string& name, const char* optarg, const SiteConfig& site);

// Parsing helpers, exposed for tests.
Result<int> parse_duration_s(const std::string& text);  // "90", "90s", "30m", "2h", "1h30m", "off"
Result<int> parse_signal(const std::string& text);      // "USR1", "SIGUSR1", "10"

}  // namespace vigil::spank
