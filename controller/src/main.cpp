// vigild — the Vigil head-node controller.
//
// Threads: main (signals: SIGTERM/SIGINT stop, SIGHUP reloads the config
// all-or-nothing) and intake (the ZeroMQ loop that owns the store).
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <filesystem>
#include <thread>

#include "config.hpp"
#include "http_api.hpp"
#include "intake.hpp"
#include "slurm_api.hpp"
#include "store.hpp"

using namespace vigil;
using namespace vigil::controller;

namespace {

void setup_logging(const Config& c) {
  auto logger = spdlog::stderr_logger_mt("vigild");
  spdlog::set_default_logger(logger);
  if (c.log_json)
    spdlog::set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","msg":"%v"})", spdlog::pattern_time_type::utc);
  else
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(c.log_level));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vigild — the Vigil controller"};
  std::string config_path = "/etc/vigil/vigild.yaml";
  std::string listen, database, munge_socket, ready_file, http_listen, results_dir;
  bool http_set = false, results_set = false;
  app.add_option("-c,--config", config_path, "YAML config file")->capture_default_str();
  app.add_option("--listen", listen, "override: intake endpoint (tcp://host:port)");
  app.add_option("--database", database, "override: SQLite database path");
  app.add_option("--munge-socket", munge_socket, "override: munged socket");
  app.add_option("--http-listen", http_listen, "override: HTTP API host:port (\"\" = off)")->each([&](const std::string&) { http_set = true; });
  app.add_option("--results-dir", results_dir, "override: where result dumps go (\"\" = no dumps)")
      ->each([&](const std::string&) { results_set = true; });
  app.add_option("--ready-file", ready_file, "write the bound endpoint here once serving");
  CLI11_PARSE(app, argc, argv);

  Result<Config> cfg = std::filesystem::exists(config_path) ? load_config(config_path) : parse_config("");
  if (!cfg) {
    fprintf(stderr, "vigild: %s\n", cfg.error().message.c_str());
    return 2;
  }
  if (!listen.empty()) cfg->listen = listen;
  if (!database.empty()) cfg->database = database;
  if (!munge_socket.empty()) cfg->munge_socket = munge_socket;
  if (http_set) cfg->http_listen = http_listen;
  if (results_set) cfg->results_dir = results_dir;
  setup_logging(*cfg);

  // Block the signals we handle before any thread starts, so only sigwait sees them.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto store = Store::open(cfg->database);
  if (!store) {
    spdlog::critical("{}", store.error().what());
    return 1;
  }
  LibSlurmControl slurm;  // reconciliation, draining lost nodes (if configured), stop-and-gather
  Intake intake(*cfg, **store, wall_clock_ns, &slurm);
  auto bound = intake.bind();
  if (!bound) {
    spdlog::critical("{}", bound.error().what());
    return 1;
  }
  spdlog::info("vigild serving on {} (database {}, schema v{})", *bound, cfg->database, (*store)->schema_version());

  std::atomic<bool> stop{false};
  std::thread loop([&] { intake.run(stop); });
  HttpApi http(*cfg, intake);
  std::string http_bound;
  if (!cfg->http_listen.empty()) {
    auto port = http.start();
    if (!port) {
      spdlog::critical("{}", port.error().what());
      stop = true;
      loop.join();
      return 1;
    }
    http_bound = cfg->http_listen.substr(0, cfg->http_listen.rfind(':')) + ":" + std::to_string(*port);
    spdlog::info("HTTP API and /metrics on http://{}", http_bound);
  }
  if (!ready_file.empty()) {
    FILE* f = fopen(ready_file.c_str(), "w");
    if (f) {
      fprintf(f, "%s\n%s\n", bound->c_str(), http_bound.c_str());
      fclose(f);
    }
  }
  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGHUP) {
      auto fresh = load_config(config_path);
      if (!fresh) {
        spdlog::error("reload rejected, keeping the old config: {}", fresh.error().message);
        continue;
      }
      if (fresh->listen != cfg->listen || fresh->database != cfg->database)
        spdlog::warn("reload: listen/database changes take effect only after a restart");
      spdlog::set_level(spdlog::level::from_str(fresh->log_level));
      intake.reconfigure(*fresh);
      cfg = std::move(fresh);
      spdlog::info("config reloaded from {}", config_path);
      continue;
    }
    spdlog::info("signal {} received: draining and stopping", sig);
    break;
  }
  http.stop();
  stop = true;
  loop.join();
  spdlog::info("vigild stopped: {} events stored", intake.counters().events_stored.load());
  return 0;
}
