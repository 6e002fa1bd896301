// emit_bench.cpp — what vigil_emit_scalar costs the simulation that calls it.
//
// Calls vigil_emit_scalar N times in chunks of 10 000 and reports the median
// ns per call over the chunks, then vigil_sdk_finalize's time (delivery of what
// is queued). Where it runs decides what is measured: outside a job (no-op),
// with VIGIL_ENDPOINT pointing at nothing (vigild down), or inside a Vigil job.
// Prints one JSON object.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "vigil/sdk.h"

int main(int argc, char** argv) {
  long calls = argc > 1 ? std::atol(argv[1]) : 100000;
  const int finalize_ms = argc > 2 ? std::atoi(argv[2]) : 60000;
  using clk = std::chrono::steady_clock;
  const double start_unix =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  vigil_sdk_init();
  std::vector<double> per_call;
  constexpr long kChunk = 10000;
  for (long done = 0; done < calls; done += kChunk) {
    const auto t0 = clk::now();
    for (long i = done; i < std::min(calls, done + kChunk); ++i)
      vigil_emit_scalar("probe", static_cast<double>(i), i, static_cast<double>(i) * 1e-3, "1");
    const auto ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count();
    per_call.push_back(ns / static_cast<double>(std::min(kChunk, calls - done)));
  }
  const auto f0 = clk::now();
  const int active = vigil_sdk_active();
  vigil_sdk_finalize(finalize_ms);
  const double finalize_s = std::chrono::duration<double>(clk::now() - f0).count();
  std::sort(per_call.begin(), per_call.end());
  std::printf(
      "{\"calls\": %ld, \"ns_per_call_median\": %.1f, \"ns_per_call_max_chunk\": %.1f, \"active\": %d, "
      "\"dropped\": %llu, \"finalize_s\": %.3f, \"start_unix\": %.6f}\n",
      calls, per_call[per_call.size() / 2], per_call.back(), active,
      static_cast<unsigned long long>(vigil_sdk_dropped()), finalize_s, start_unix);
  return 0;
}
