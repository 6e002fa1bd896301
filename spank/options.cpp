// options.cpp — see options.hpp.
#include "options.hpp"

#include "vigil/rules.hpp"

#include <cctype>
#include <climits>
#include <cstdlib>

namespace vigil::spank {
namespace {

Result<long> parse_long(const std::string& s, long lo, long hi) {
  if (s.empty()) return make_error(Errc::malformed, "empty value");
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0' || v < lo || v > hi)
    return make_error(Errc::malformed, "'" + s + "' is not an integer in [" + std::to_string(lo) + ", " +
                                           std::to_string(hi) + "]");
  return v;
}

Error opt_error(const std::string& name, const std::string& accepted, const std::string& got) {
  return make_error(Errc::malformed, "--vigil-" + name + ": invalid value '" + got + "'; expected " + accepted);
}

bool valid_label(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (unsigned char c : s)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-' && c != ':' && c != '/' && c != '+' && c != '=')
      return false;
  return true;
}

}  // namespace

int JobOptions::effective_heartbeat(const SiteConfig& s) const {
  return heartbeat_s > 0 ? heartbeat_s : s.default_heartbeat_s;
}

Result<int> parse_duration_s(const std::string& text) {
  if (text == "off" || text == "0") return 0;
  long total = 0;
  std::size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i || j - i > 7) return make_error(Errc::malformed, "bad duration");
    long n = std::strtol(text.substr(i, j - i).c_str(), nullptr, 10);
    long unit = 1;
    if (j < text.size()) {
      switch (text[j]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return make_error(Errc::malformed, "bad duration unit");
      }
      ++j;
    } else if (any) {
      return make_error(Errc::malformed, "number without unit after a unit");
    }
    total += n * unit;
    if (total > 366L * 86400) return make_error(Errc::malformed, "duration over a year");
    any = true;
    i = j;
  }
  if (!any) return make_error(Errc::malformed, "empty duration");
  return static_cast<int>(total);
}

Result<int> parse_signal(const std::string& text) {
  static const struct {
    const char* name;
    int sig;
  } table[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"INT", SIGINT},
               {"HUP", SIGHUP},   {"URG", SIGURG},   {"ALRM", SIGALRM}, {"CONT", SIGCONT}};
  std::string t = text;
  for (auto& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (t.rfind("SIG", 0) == 0) t = t.substr(3);
  for (const auto& e : table)
    if (t == e.name) return e.sig;
  auto n = parse_long(t, 1, 64);
  if (n && *n != SIGKILL && *n != SIGSTOP) return static_cast<int>(*n);
  return make_error(Errc::malformed, "unknown signal");
}

const std::vector<OptionSpec>& option_specs() {
  static const std::vector<OptionSpec> specs = {
      {"heartbeat", "SECONDS", "Vigil: heartbeat interval in seconds (default 5; the site sets the minimum)"},
      {"checkpoint", "DURATION", "Vigil: send the checkpoint signal every DURATION (e.g. 90s, 30m, 2h; off)"},
      {"checkpoint-signal", "SIGNAL", "Vigil: signal that asks the simulation to checkpoint (default USR1)"},
      {"results", "on|off", "Vigil: keep live partial-result dumps of this job (default on)"},
      {"results-dir", "PATH", "Vigil: absolute directory for this job's result dumps"},
      {"retries", "N", "Vigil: automatic restarts from the last checkpoint after node failure (default 3)"},
      {"protect", nullptr, "Vigil: long-run protection: no preemption/maintenance without a fresh checkpoint"},
      {"keep-checkpoints", "K", "Vigil: keep the newest K verified checkpoints, delete older ones (0: keep all)"},
      {"label", "TEXT", "Vigil: scenario or study label (letters, digits, . _ - : / + =; max 64)"},
      {"rules", "RULES", "Vigil: early-signal rules, e.g. 'nan@stop,residual>1e3:3@stop,stall=10m' (see docs)"},
  };
  return specs;
}

Status apply_option(JobOptions& o, const std::string& name, const char* optarg, const SiteConfig& site) {
  const std::string v = optarg ? optarg : "";
  if (name == "heartbeat") {
    auto n = parse_long(v, 1, 3600);
    if (!n) return opt_error(name, "whole seconds in [1, 3600]", v);
    if (*n < site.min_heartbeat_s)
      return opt_error(name, "at least " + std::to_string(site.min_heartbeat_s) + " s (site minimum)", v);
    o.heartbeat_s = static_cast<int>(*n);
  } else if (name == "checkpoint") {
    auto d = parse_duration_s(v);
    if (!d) return opt_error(name, "a duration like 90s, 30m, 2h, 1h30m, or off", v);
    if (*d != 0 && *d < 10) return opt_error(name, "at least 10s (or off)", v);
    o.checkpoint_s = *d;
  } else if (name == "checkpoint-signal") {
    auto s = parse_signal(v);
    if (!s) return opt_error(name, "a signal name (USR1, USR2, TERM, INT, HUP, URG, ALRM, CONT) or number", v);
    o.checkpoint_signal = *s;
  } else if (name == "results") {
    if (v == "on" || v == "yes" || v == "1") o.results = true;
    else if (v == "off" || v == "no" || v == "0") o.results = false;
    else return opt_error(name, "on or off", v);
  } else if (name == "results-dir") {
    if (v.empty() || v[0] != '/' || v.size() > 1024 || v.find("..") != std::string::npos)
      return opt_error(name, "an absolute path without '..'", v);
    o.results_dir = v;
  } else if (name == "retries") {
    auto n = parse_long(v, 0, site.max_retries);
    if (!n) return opt_error(name, "an integer in [0, " + std::to_string(site.max_retries) + "]", v);
    o.retries = static_cast<int>(*n);
  } else if (name == "protect") {
    o.protect = true;
  } else if (name == "keep-checkpoints") {
    auto n = parse_long(v, 0, 10000);
    if (!n) return opt_error(name, "an integer in [0, 10000] (0: keep all)", v);
    o.keep_checkpoints = static_cast<int>(*n);
  } else if (name == "label") {
    if (!valid_label(v)) return opt_error(name, "1-64 characters from letters, digits and . _ - : / + =", v);
    o.label = v;
  } else if (name == "rules") {
    if (v.size() > 1024) return opt_error(name, "at most 1024 characters", v.substr(0, 40) + "...");
    if (auto r = parse_rules(v); !r)
      return opt_error(name, r.error().message + "; accepted: nan | METRIC>X[:K] | METRIC<X[:K] | stall=DURATION, each with @alert or @stop, comma-separated", v);
    o.rules = v;
  } else {
    return make_error(Errc::internal, "unknown option --vigil-" + name);
  }
  return ok_status();
}

SiteConfig parse_site_args(const std::vector<std::string>& args, std::vector<std::string>& warnings) {
  SiteConfig s;
  for (const std::string& a : args) {
    const auto eq = a.find('=');
    if (eq == std::string::npos) {
      warnings.push_back("ignoring plugstack argument '" + a + "': expected key=value");
      continue;
    }
    const std::string k = a.substr(0, eq), v = a.substr(eq + 1);
    auto bad = [&](const std::string& why) { warnings.push_back("ignoring plugstack argument '" + a + "': " + why); };
    if (k == "endpoint") {
      if (v.rfind("tcp://", 0) == 0 || v.rfind("ipc://", 0) == 0) s.endpoint = v;
      else bad("expected tcp://host:port or ipc://path");
    } else if (k == "munge_socket") {
      if (!v.empty() && v[0] == '/') s.munge_socket = v;
      else bad("expected an absolute path");
    } else if (k == "transport") {
      if (!v.empty() && v[0] == '/') s.transport = v;
      else bad("expected an absolute path");
    } else if (k == "spool_dir") {
      if (!v.empty() && v[0] == '/') s.spool_dir = v;
      else bad("expected an absolute path");
    } else if (k == "min_heartbeat" || k == "default_heartbeat") {
      auto n = parse_long(v, 1, 3600);
      if (!n) bad(n.error().message);
      else if (k == "min_heartbeat") s.min_heartbeat_s = static_cast<int>(*n);
      else s.default_heartbeat_s = static_cast<int>(*n);
    } else if (k == "max_retries") {
      auto n = parse_long(v, 0, 1000);
      if (n) s.max_retries = static_cast<int>(*n);
      else bad(n.error().message);
    } else if (k == "spool_max_mb") {
      auto n = parse_long(v, 1, 1 << 20);
      if (n) s.spool_max_bytes = static_cast<std::size_t>(*n) << 20;
      else bad(n.error().message);
    } else if (k == "exit_flush_ms") {
      auto n = parse_long(v, 0, 5000);
      if (n) s.exit_flush_ms = static_cast<int>(*n);
      else bad(n.error().message);
    } else {
      bad("unknown key");
    }
  }
  if (s.default_heartbeat_s < s.min_heartbeat_s) {
    warnings.push_back("default_heartbeat below min_heartbeat: raised to " + std::to_string(s.min_heartbeat_s));
    s.default_heartbeat_s = s.min_heartbeat_s;
  }
  return s;
}

}  // namespace vigil::spank
