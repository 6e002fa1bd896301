// commands.hpp — the larger `vigil` subcommands, one translation unit each.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vigil/client.hpp"

namespace vigil::cli {

struct TailOptions {
  std::uint32_t job = 0;
  std::vector<std::string> metrics;  // name or stage/name; empty: all
  bool follow = false;
  bool json = false;
  int interval_ms = 500;
};
// `vigil tail JOB`: latest value, rate of change and a sparkline per metric.
int tail(Client& client, const TailOptions& o);

struct StopOptions {
  std::uint32_t job = 0;
  bool gather = false;
  int timeout_s = 0;  // 0: vigild's stop_gather_timeout_s
  bool wait = true;
  bool json = false;
};
// `vigil stop JOB [--gather]`: checkpoint, flush, cancel; report what was gathered.
int stop(Client& client, const StopOptions& o);

struct EmitOptions {
  std::string name;             // metric name (emit) or checkpoint path (report-checkpoint)
  std::vector<double> values;   // one, or the elements of an array (C order)
  std::string dims;             // "" for a scalar, else "AxB..."
  std::string units, stage;
  std::string output_name;      // report-output: the name it is registered under ("" = the path)
  std::int64_t step = 0;
  double sim_time = 0;
  int timeout_ms = 2000;
};
// The shell SDK (inside a job; a no-op outside one).
int emit(const EmitOptions& o);
int report_checkpoint(const EmitOptions& o);
int report_output(const EmitOptions& o);

}  // namespace vigil::cli
