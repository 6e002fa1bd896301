// stop.cpp — `vigil stop JOB [--gather]`.
//
// With --gather, vigild sends the job's checkpoint signal to every running
// step, waits (up to the timeout) for the simulation to report a checkpoint,
// cancels the job in Slurm, and finalises its result dump; this command
// follows the job's timeline and reports what was gathered.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "commands.hpp"

namespace vigil::cli {

int stop(Client& client, const StopOptions& o) {
  json req = {{"op", "stop"}, {"job", o.job}, {"gather", o.gather}};
  if (o.timeout_s > 0) req["timeout_s"] = o.timeout_s;
  auto r = client.request(req);
  if (!r) {
    std::fprintf(stderr, "vigil: stop: %s\n", r.error().what().c_str());
    return r.error().code == Errc::unavailable ? 3 : 1;
  }
  const int timeout = (*r)["timeout_s"].get<int>();
  if (!o.json)
    std::printf("job %u: stop%s requested (%zu step(s) asked to checkpoint; timeout %d s)\n", o.job,
                o.gather ? " and gather" : "", (*r)["targets"].size(), timeout);
  if (!o.wait) {
    if (o.json) std::cout << r->dump(2) << "\n";
    return 0;
  }
  json report = {{"job", o.job}, {"checkpoints", json::array()}};
  std::int64_t after = (*r)["after_seq"].get<std::int64_t>();
  bool cancelled = false, final = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout + 90);
  while (!final && std::chrono::steady_clock::now() < deadline) {
    auto evs = client.request({{"op", "events"}, {"job", o.job}, {"after", after}, {"limit", 1000}});
    if (!evs) {
      std::fprintf(stderr, "vigil: stop: %s\n", evs.error().what().c_str());
      return 3;
    }
    for (const json& e : *evs) {
      after = e["seq"].get<std::int64_t>();
      const std::string type = e["type"];
      const json& a = e["attrs"];
      if (type == "checkpoint_signal" && !o.json)
        std::printf("  %s: checkpoint signal delivered to %d task(s)\n", e.value("node", std::string("?")).c_str(),
                    a.value("delivered", 0));
      if (type == "checkpoint") {
        report["checkpoints"].push_back({{"path", a.value("path", "")}, {"step", a.value("step", -1LL)}});
        if (!o.json) std::printf("  checkpoint reported: %s (step %lld)\n", a.value("path", "").c_str(), a.value("step", -1LL));
      }
      if (type == "stop" && a.value("what", "") != "requested") {
        cancelled = a.value("what", "") == "cancelled";
        report["stop"] = a;
        if (!o.json)
          std::printf("  %s: %s\n", cancelled ? "cancelled in Slurm" : "could not cancel", a.value("gathered", "").c_str());
      }
      if (type == "results_final") {
        final = true;
        report["results"] = a;
      }
    }
    if (cancelled && !final) {
      // A job that never emitted a value has no dump to finalise.
      auto res = client.request({{"op", "results"}, {"job", o.job}, {"limit", 1}});
      if (res && (*res)["values"].empty()) {
        final = true;
        report["results"] = {{"records", 0}, {"last_step", -1}, {"files", json::array()}};
      }
    }
    if (!final) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  if (o.json) {
    std::cout << report.dump(2) << "\n";
  } else if (final) {
    const json& f = report["results"];
    std::printf("gathered: %lld result records, last step %lld\n", f.value("records", 0LL), f.value("last_step", -1LL));
    for (const json& file : f.value("files", json::array()))
      std::printf("  %s  %llu bytes  sha256 %s\n", file["path"].get<std::string>().c_str(),
                  file["bytes"].get<unsigned long long>(), file["sha256"].get<std::string>().c_str());
    for (const json& c : report["checkpoints"])
      std::printf("  checkpoint %s (step %lld)\n", c["path"].get<std::string>().c_str(), c["step"].get<long long>());
  }
  if (!final) {
    std::fprintf(stderr, "vigil: stop: job %u: %s\n", o.job,
                 cancelled ? "cancelled, but its results were not finalised in time (no results?)"
                           : "not stopped within the timeout");
    return 1;
  }
  return 0;
}

}  // namespace vigil::cli
