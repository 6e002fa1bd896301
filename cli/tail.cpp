// tail.cpp — `vigil tail JOB`: a live view of a job's results.
//
// Reads from vigild (the `results` request), not from the HDF5 file, so it
// works from any host and for jobs whose dump is off; the file's path is shown
// for tools that want the data itself (h5py, h5dump).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <thread>

#include "commands.hpp"

namespace vigil::cli {
namespace {

constexpr std::size_t kHistory = 32;

struct Series {
  std::string units, kind;
  std::deque<double> values;  // scalars: value; arrays: mean
  std::deque<std::int64_t> steps;
  std::string array_summary;
  std::int64_t seen = 0;
};

std::string sparkline(const std::deque<double>& v) {
  static const char* bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  double lo = INFINITY, hi = -INFINITY;
  for (double x : v)
    if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  std::string out;
  for (double x : v) {
    if (!std::isfinite(x)) {
      out += "!";
      continue;
    }
    const int i = hi > lo ? static_cast<int>((x - lo) / (hi - lo) * 7.0 + 0.5) : 3;
    out += bars[std::clamp(i, 0, 7)];
  }
  return out;
}

bool wanted(const TailOptions& o, const std::string& stage, const std::string& name) {
  if (o.metrics.empty()) return true;
  for (const auto& m : o.metrics)
    if (m == name || m == stage + "/" + name) return true;
  return false;
}

double as_double(const json& j) { return j.is_number() ? j.get<double>() : NAN; }  // NaN arrives as CBOR NaN

void render(const TailOptions& o, const json& head, const std::map<std::string, Series>& series, bool clear) {
  if (clear) std::printf("\033[H\033[2J");
  std::printf("job %u  %s", o.job, head.value("state", std::string("?")).c_str());
  if (head.contains("file")) std::printf("  file %s", head["file"].get<std::string>().c_str());
  std::printf("\n%-32s %8s %13s %12s  %-32s %s\n", "STAGE/METRIC", "STEP", "LATEST", "RATE/STEP", "TREND", "UNITS");
  for (const auto& [key, s] : series) {
    if (s.values.empty()) continue;
    const double last = s.values.back();
    std::string rate = "-";
    if (s.values.size() >= 2 && s.steps.back() != s.steps[s.steps.size() - 2]) {
      char b[32];
      std::snprintf(b, sizeof b, "%+.3e",
                    (last - s.values[s.values.size() - 2]) /
                        static_cast<double>(s.steps.back() - s.steps[s.steps.size() - 2]));
      rate = b;
    }
    char latest[32];
    std::snprintf(latest, sizeof latest, "%.6g", last);
    std::printf("%-32s %8lld %13s %12s  %-32s %s\n", (key + (s.kind == "array" ? " (mean)" : "")).c_str(),
                static_cast<long long>(s.steps.back()), latest, rate.c_str(), sparkline(s.values).c_str(),
                s.units.c_str());
    if (!s.array_summary.empty()) std::printf("%-32s %s\n", "", s.array_summary.c_str());
  }
  if (series.empty()) std::printf("(no results yet)\n");
  if (head.contains("final")) {
    const json& f = head["final"];
    std::printf("final: %lld records, last step %lld\n", f.value("records", 0LL), f.value("last_step", -1LL));
    for (const json& file : f.value("files", json::array()))
      std::printf("  %s  sha256 %s\n", file["path"].get<std::string>().c_str(), file["sha256"].get<std::string>().c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int tail(Client& client, const TailOptions& o) {
  std::map<std::string, Series> series;
  std::int64_t after = 0;
  json head;
  const bool tty = isatty(STDOUT_FILENO) == 1;
  for (;;) {
    bool changed = false;
    for (;;) {  // catch up in pages
      auto r = client.request({{"op", "results"}, {"job", o.job}, {"after", after}, {"limit", 5000}});
      if (!r) {
        std::fprintf(stderr, "vigil: tail: %s\n", r.error().what().c_str());
        return r.error().code == Errc::unavailable ? 3 : 1;
      }
      head = *r;
      const json& values = (*r)["values"];
      after = (*r)["last_seq"].get<std::int64_t>();
      for (const json& v : values) {
        const std::string stage = v["stage"], name = v["name"];
        if (!wanted(o, stage, name)) continue;
        changed = true;
        if (o.json && o.follow) std::cout << v.dump() << "\n";
        Series& s = series[stage + "/" + name];
        s.units = v.value("units", std::string());
        s.kind = v["kind"];
        const bool array = s.kind == "array";
        s.values.push_back(as_double(array ? v["mean"] : v["v"]));
        s.steps.push_back(v["step"].get<std::int64_t>());
        if (array) {
          std::string dims;
          for (const json& d : v["dims"]) dims += (dims.empty() ? "" : "x") + d.dump();
          char b[160];
          std::snprintf(b, sizeof b, "[%s] min %.4g max %.4g%s", dims.c_str(), as_double(v["min"]),
                        as_double(v["max"]),
                        v["nonfinite"].get<std::uint64_t>() ? ("  " + v["nonfinite"].dump() + " non-finite").c_str() : "");
          s.array_summary = b;
        }
        if (s.values.size() > kHistory) s.values.pop_front(), s.steps.pop_front();
        s.seen++;
      }
      if (values.size() < 5000) break;
    }
    const bool ended = head.contains("final") && head.value("state", std::string()) != "RUNNING";
    if (o.json && !o.follow) {
      json out = {{"job", o.job}, {"state", head.value("state", std::string())}, {"metrics", json::object()}};
      if (head.contains("file")) out["file"] = head["file"];
      if (head.contains("final")) out["final"] = head["final"];
      for (const auto& [key, s] : series)
        out["metrics"][key] = {{"latest", s.values.back()}, {"step", s.steps.back()}, {"units", s.units},
                               {"kind", s.kind}, {"count", s.seen}, {"history", s.values}};
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    if (!o.json && (changed || !o.follow || ended)) render(o, head, series, tty && o.follow);
    if (!o.follow || ended) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
  }
}

}  // namespace vigil::cli
