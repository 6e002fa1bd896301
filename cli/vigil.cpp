// vigil — the command-line client: status, jobs, show JOB, events [--follow],
// tail JOB, stop JOB [--gather], checkpoint JOB, emit (the shell SDK).
//
// Talks to vigild over the same authenticated protocol as the plugin; vigild
// decides what the caller may see (own jobs, or all for admins). Endpoint and
// MUNGE socket come from flags or VIGIL_ENDPOINT / VIGIL_MUNGE_SOCKET.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <thread>

#include "commands.hpp"
#include "vigil/client.hpp"
#include "vigil/sdk.h"

using namespace vigil;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string fmt_time(std::int64_t ns) {
  if (ns <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ns / 1'000'000'000);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03d", buf, static_cast<int>((ns / 1'000'000) % 1000));
  return out;
}

std::string step_name(const json& e) {
  if (!e.contains("step")) return "-";
  const auto s = e["step"].get<std::uint64_t>();
  switch (s) {  // Slurm's special step ids
    case 0xfffffffbu: return "batch";
    case 0xfffffffcu: return "extern";
    case 0xfffffffau: return "interactive";
    default: return std::to_string(s);
  }
}

std::string attrs_brief(const json& a) {
  std::string out;
  for (auto it = a.begin(); it != a.end(); ++it) {
    if (!out.empty()) out += ' ';
    out += it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
    if (out.size() > 100) return out.substr(0, 100) + "…";
  }
  return out;
}

void print_event_row(const json& e) {
  std::printf("%-12s %7u %-6s %-4s %-6s %-18s %s\n", fmt_time(e["ts_ns"].get<std::int64_t>()).c_str(),
              e["job"].get<unsigned>(), step_name(e).c_str(),
              e.contains("task") ? std::to_string(e["task"].get<int>()).c_str() : "-",
              e.value("node", std::string("-")).c_str(), e["type"].get<std::string>().c_str(),
              attrs_brief(e["attrs"]).c_str());
}

void print_event_header() {
  std::printf("%-12s %7s %-6s %-4s %-6s %-18s %s\n", "TIME", "JOB", "STEP", "TASK", "NODE", "EVENT", "DETAILS");
}

int fail(const Error& e) {
  std::fprintf(stderr, "vigil: %s\n", e.what().c_str());
  return e.code == Errc::unavailable ? 3 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vigil — watch simulations running under Slurm"};
  app.require_subcommand(1);
  ClientOptions opts;
  opts.endpoint = env_or("VIGIL_ENDPOINT", "tcp://127.0.0.1:7810");
  opts.munge_socket = env_or("VIGIL_MUNGE_SOCKET", "");
  opts.role = "cli";
  bool as_json = false;
  app.add_option("--endpoint", opts.endpoint, "vigild endpoint (env VIGIL_ENDPOINT)")->capture_default_str();
  app.add_option("--munge-socket", opts.munge_socket, "munged socket (env VIGIL_MUNGE_SOCKET)");
  app.add_option("--timeout-ms", opts.timeout_ms, "per-request timeout")->capture_default_str();
  app.add_flag("--json", as_json, "machine-readable output");

  auto* status = app.add_subcommand("status", "vigild health and counters");
  auto* jobs = app.add_subcommand("jobs", "jobs known to vigild (yours, or all for admins)");
  auto* nodes = app.add_subcommand("nodes", "nodes with running steps: heartbeat age, lost or not");
  std::string show_job;
  auto* show = app.add_subcommand("show", "one job: state and timeline");
  show->add_option("job", show_job, "Slurm job id (the current job with it), or a job key such as 1234.0 "
                                    "(an earlier job whose id Slurm gave out again)")->required();
  auto* events = app.add_subcommand("events", "the event stream");
  std::uint32_t ev_job = 0;
  bool follow = false;
  events->add_option("--job", ev_job, "only this job");
  events->add_flag("-f,--follow", follow, "keep printing new events");
  std::uint32_t ckpt_job = 0;
  bool ckpt_wait = false;
  auto* ckpt = app.add_subcommand("checkpoint", "ask a running job's steps to checkpoint now (sends its checkpoint signal)");
  ckpt->add_option("job", ckpt_job, "Slurm job id")->required();
  ckpt->add_flag("--wait", ckpt_wait, "wait (up to 30 s) until every node reports delivery");
  cli::TailOptions tail_o;
  auto* tail = app.add_subcommand("tail", "a job's results, live: latest value, rate of change and trend per metric");
  tail->add_option("job", tail_o.job, "Slurm job id")->required();
  tail->add_option("-m,--metric", tail_o.metrics, "only this metric (name or stage/name; repeatable)");
  tail->add_flag("-f,--follow", tail_o.follow, "keep updating until the job has ended");
  tail->add_option("--interval-ms", tail_o.interval_ms, "refresh interval with --follow")->capture_default_str();
  cli::StopOptions stop_o;
  bool stop_no_wait = false;
  auto* usage = app.add_subcommand("usage", "CPU-hours and node-hours per interval (yours, or any for admins)");
  std::int64_t usage_hours = 24, usage_interval = 3600;
  std::uint32_t usage_job = 0;
  std::string usage_user, usage_account, usage_study;
  usage->add_option("--hours", usage_hours, "how far back (default 24)");
  usage->add_option("--interval", usage_interval, "seconds per row (default 3600)");
  usage->add_option("--job", usage_job, "one job");
  usage->add_option("--user", usage_user, "one user");
  usage->add_option("--account", usage_account, "one Slurm account");
  usage->add_option("--study", usage_study, "one study (--vigil-label)");
  auto* stop = app.add_subcommand("stop", "stop a job; with --gather first checkpoint and flush its results");
  stop->add_option("job", stop_o.job, "Slurm job id")->required();
  stop->add_flag("--gather", stop_o.gather, "checkpoint and flush before cancelling, then report what was gathered");
  stop->add_option("--timeout", stop_o.timeout_s, "seconds to wait for the checkpoint (default: vigild's setting)");
  stop->add_flag("--no-wait", stop_no_wait, "return once vigild has the request");
  cli::EmitOptions emit_o;
  auto* emit = app.add_subcommand("emit", "from inside a job: report a scalar, or an array with --dims (shell SDK)");
  emit->add_option("name", emit_o.name, "metric name")->required();
  emit->add_option("values", emit_o.values, "the value (or, with --dims, the array's elements in C order)")->required();
  emit->add_option("--dims", emit_o.dims, "an array of this shape, e.g. 4x4");
  emit->add_option("--step", emit_o.step, "simulation step");
  emit->add_option("--sim-time", emit_o.sim_time, "simulation time");
  emit->add_option("--units", emit_o.units, "units");
  emit->add_option("--stage", emit_o.stage, "stage the value belongs to (default main)");
  auto* report = app.add_subcommand("report-checkpoint", "from inside a job: a checkpoint file was written (shell SDK)");
  report->add_option("path", emit_o.name, "the checkpoint file")->required();
  report->add_option("--step", emit_o.step, "simulation step");
  report->add_option("--sim-time", emit_o.sim_time, "simulation time");
  auto* output = app.add_subcommand("report-output", "from inside a job: a final output file was written (shell SDK)");
  output->add_option("path", emit_o.name, "the output file (absolute path)")->required();
  output->add_option("--name", emit_o.output_name, "the name it is registered under (default: the path)");
  output->add_option("--step", emit_o.step, "simulation step");
  CLI11_PARSE(app, argc, argv);

  emit_o.timeout_ms = opts.timeout_ms;
  if (output->parsed()) return cli::report_output(emit_o);
  if (emit->parsed()) return cli::emit(emit_o);
  if (report->parsed()) return cli::report_checkpoint(emit_o);

  Client client(opts);
  if (tail->parsed()) {
    tail_o.json = as_json;
    return cli::tail(client, tail_o);
  }
  if (stop->parsed()) {
    stop_o.json = as_json;
    stop_o.wait = !stop_no_wait;
    return cli::stop(client, stop_o);
  }
  if (status->parsed()) {
    auto r = client.request({{"op", "status"}});
    if (!r) return fail(r.error());
    if (as_json) std::cout << r->dump(2) << "\n";
    else {
      std::printf("vigild %s  up %llds  events %lld  sessions %lld  (you: uid %lld%s)\n",
                  (*r)["version"].get<std::string>().c_str(), (*r)["uptime_s"].get<long long>(),
                  (*r)["events"].get<long long>(), (*r)["sessions"].get<long long>(),
                  (*r)["you"]["uid"].get<long long>(), (*r)["you"]["admin"].get<bool>() ? ", admin" : "");
      for (auto it = (*r)["rejected"].begin(); it != (*r)["rejected"].end(); ++it)
        std::printf("  rejected %-16s %s\n", it.key().c_str(), it->dump().c_str());
    }
    return 0;
  }
  if (ckpt->parsed()) {
    auto r = client.request({{"op", "checkpoint"}, {"job", ckpt_job}});
    if (!r) return fail(r.error());
    const auto id = (*r)["command"].get<std::uint64_t>();
    const std::size_t want = (*r)["targets"].size();
    if (!as_json) std::printf("checkpoint #%llu requested for job %u: %zu step(s)\n", static_cast<unsigned long long>(id), ckpt_job, want);
    if (!ckpt_wait) {
      if (as_json) std::cout << r->dump(2) << "\n";
      return 0;
    }
    json seen = json::array();
    std::int64_t after = 0;
    for (int i = 0; i < 120 && seen.size() < want; ++i) {
      auto evs = client.request({{"op", "events"}, {"job", ckpt_job}, {"after", after}, {"limit", 1000}});
      if (!evs) return fail(evs.error());
      for (const json& e : *evs) {
        after = e["seq"].get<std::int64_t>();
        if (e["type"] == "checkpoint_signal" && e["attrs"].value("command", std::uint64_t{0}) == id) {
          seen.push_back(e);
          if (!as_json)
            std::printf("  %s step %s: signal %d delivered to %d of %d task(s)\n", e.value("node", std::string("?")).c_str(),
                        step_name(e).c_str(), e["attrs"]["signal"].get<int>(), e["attrs"]["delivered"].get<int>(),
                        e["attrs"]["tasks"].get<int>());
        }
      }
      if (seen.size() < want) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    if (as_json) std::cout << json{{"command", id}, {"targets", (*r)["targets"]}, {"deliveries", seen}}.dump(2) << "\n";
    if (seen.size() < want) {
      std::fprintf(stderr, "vigil: only %zu of %zu steps reported delivery within 30 s\n", seen.size(), want);
      return 1;
    }
    return 0;
  }
  if (usage->parsed()) {
    const std::int64_t now = std::time(nullptr);
    json req = {{"op", "usage"}, {"from", now - usage_hours * 3600}, {"to", now + 60}, {"interval_s", usage_interval}};
    if (usage_job) req["job"] = usage_job;
    if (!usage_user.empty()) req["user"] = usage_user;
    if (!usage_account.empty()) req["account"] = usage_account;
    if (!usage_study.empty()) req["study"] = usage_study;
    auto r = client.request(req);
    if (!r) return fail(r.error());
    if (as_json) {
      std::cout << r->dump(2) << "\n";
      return 0;
    }
    std::printf("%-12s %12s %12s\n", "FROM", "CPU_HOURS", "NODE_HOURS");
    for (const json& p : (*r)["points"])
      std::printf("%-12s %12.3f %12.3f\n", fmt_time(p["t"].get<std::int64_t>() * 1'000'000'000).c_str(),
                  p["cpu_hours"].get<double>(), p["node_hours"].get<double>());
    std::printf("%-12s %12.3f %12.3f\n", "total", (*r)["cpu_hours"].get<double>(), (*r)["node_hours"].get<double>());
    return 0;
  }
  if (nodes->parsed()) {
    auto r = client.request({{"op", "nodes"}});
    if (!r) return fail(r.error());
    if (as_json) {
      std::cout << r->dump(2) << "\n";
      return 0;
    }
    std::printf("%-12s %6s %14s %s\n", "NODE", "STEPS", "HEARTBEAT_AGE", "STATE");
    for (const json& n : *r)
      std::printf("%-12s %6lld %13.1fs %s\n", n["node"].get<std::string>().c_str(), n["steps"].get<long long>(),
                  n["heartbeat_age_s"].get<double>(), n["lost"].get<bool>() ? "LOST" : "ok");
    return 0;
  }
  if (jobs->parsed()) {
    auto r = client.request({{"op", "jobs"}});
    if (!r) return fail(r.error());
    if (as_json) {
      std::cout << r->dump(2) << "\n";
      return 0;
    }
    std::printf("%9s %-12s %-10s %-12s %-12s %6s %s\n", "JOB", "USER", "STATE", "FIRST", "LAST", "EVENTS", "LABEL");
    for (const json& j : *r)
      std::printf("%9s %-12s %-10s %-12s %-12s %6lld %s\n", j.value("key", std::string("?")).c_str(),
                  j["user"].get<std::string>().c_str(),
                  j["state"].get<std::string>().c_str(), fmt_time(j["first_ns"].get<std::int64_t>()).c_str(),
                  fmt_time(j["last_ns"].get<std::int64_t>()).c_str(), j["events"].get<long long>(),
                  j["label"].get<std::string>().c_str());
    return 0;
  }
  if (show->parsed()) {
    auto r = client.request({{"op", "job"}, {"job", show_job}});  // "1234" or "1234.0": vigild resolves it
    if (!r) return fail(r.error());
    if (as_json) {
      std::cout << r->dump(2) << "\n";
      return 0;
    }
    std::printf("job %s  user %s  state %s  label %s  events %lld\n", (*r).value("key", show_job).c_str(),
                (*r)["user"].get<std::string>().c_str(),
                (*r)["state"].get<std::string>().c_str(), (*r)["label"].get<std::string>().c_str(),
                (*r)["events"].get<long long>());
    if (r->contains("transitions") && !(*r)["transitions"].empty()) {
      std::printf("%-12s %-11s %-11s %s\n", "TIME", "FROM", "TO", "REASON");
      for (const json& t : (*r)["transitions"])
        std::printf("%-12s %-11s %-11s %s\n", fmt_time(t["ts_ns"].get<std::int64_t>()).c_str(),
                    t["from"].get<std::string>().c_str(), t["to"].get<std::string>().c_str(),
                    t["reason"].get<std::string>().c_str());
      std::printf("\n");
    }
    if (r->contains("steps") && !(*r)["steps"].empty()) {
      std::printf("%-10s %-10s %-12s %-12s %10s %9s %10s %s\n", "STEP", "NODE", "STARTED", "LAST_SEEN", "HEARTBEATS",
                  "MAX_GAP", "CPU_S", "STATE");
      for (const json& st : (*r)["steps"]) {
        const auto step = st["step"].get<std::uint32_t>();
        const std::string name = step == 0xfffffffbu ? "batch" : step == 0xfffffffcu ? "extern" : std::to_string(step);
        std::printf("%-10s %-10s %-12s %-12s %10lld %8.1fs %10.1f %s\n", name.c_str(),
                    st["node"].get<std::string>().c_str(), fmt_time(st["started_ns"].get<std::int64_t>()).c_str(),
                    fmt_time(st["last_ns"].get<std::int64_t>()).c_str(), st["heartbeats"].get<long long>(),
                    st["max_gap_ms"].get<double>() / 1000.0, st["cpu_s"].get<double>(),
                    st["ended_ns"].get<std::int64_t>() ? "ended" : st["silent"].get<bool>() ? "SILENT" : "running");
      }
      std::printf("\n");
    }
    if (const auto gone = r->value("timeline_forgotten_ns", std::int64_t{0}); gone > 0) {
      const std::time_t t = static_cast<std::time_t>(gone / 1'000'000'000);
      char day[32];
      std::strftime(day, sizeof day, "%Y-%m-%d", std::localtime(&t));
      std::printf("(its events and steps were deleted on %s, timeline_keep_days after it ended; its state, "
                  "transitions and usage are kept)\n", day);
    }
    else if (!r->value("timeline_complete", true))
      std::printf("(the newest %zu events; all of them: vigil events --job %s)\n", (*r)["timeline"].size(),
                  r->value("key", std::string("?")).c_str());
    print_event_header();
    for (const json& e : (*r)["timeline"]) print_event_row(e);
    if (r->value("current", true)) {
      const unsigned id = (*r)["job"].get<unsigned>();
      std::printf("(%lld result values: vigil tail %u; usage: vigil usage --job %u)\n", r->value("results", 0LL), id, id);
    } else {
      std::printf("(%lld result values; Slurm has since given id %u to a newer job: `vigil show %u` is that one)\n",
                  r->value("results", 0LL), (*r)["job"].get<unsigned>(), (*r)["job"].get<unsigned>());
    }
    return 0;
  }
  if (events->parsed()) {
    std::int64_t after = 0;
    bool header = false;
    for (;;) {
      json req = {{"op", "events"}, {"after", after}, {"limit", 1000}};
      if (ev_job) req["job"] = ev_job;
      auto r = client.request(req);
      if (!r) return fail(r.error());
      for (const json& e : *r) {
        after = e["seq"].get<std::int64_t>();
        if (as_json) std::cout << e.dump() << "\n";
        else {
          if (!header) print_event_header();
          header = true;
          print_event_row(e);
        }
      }
      std::fflush(stdout);
      if (!follow && r->size() < 1000) return 0;
      if (r->size() < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
  return 0;
}
