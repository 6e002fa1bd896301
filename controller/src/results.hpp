// results.hpp — a simulation's result values: validation and normalisation.
//
// A `result` event's attrs (from the SDK, sdk/include/vigil/sdk.h v2):
//   {kind: "scalar", name, stage, step, sim_t, units?, v}
//   {kind: "array",  name, stage, step, sim_t, units?, dims: [d1..dn], data: [...]}
// Names and stages are 1..64 characters of [A-Za-z0-9_.-] (they become HDF5 path
// components). The store keeps attrs as JSON text, which has no NaN or infinity,
// so non-finite numbers are stored as the strings "nan", "inf" and "-inf" and
// read back as doubles: a NaN a simulation emits must reach the dump and the
// early-signal rules as a NaN. Pure functions; unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vigil/message.hpp"
#include "vigil/result.hpp"

namespace vigil::controller {

inline constexpr std::size_t kMaxResultName = 64;
inline constexpr int kMaxResultDims = 4;
inline constexpr std::int64_t kMaxArrayElements = 65536;

struct ResultValue {
  std::uint32_t job = 0;
  std::int64_t seq = 0;        // the event's sequence number in the store
  std::int64_t wall_ns = 0;    // when the simulation emitted it (its clock)
  std::uint32_t restart = 0;   // Slurm restart count of the attempt that emitted it
  std::int32_t task = 0;       // global task id (SLURM_PROCID) that emitted it
  std::string stage = "main", name, units;
  bool array = false;
  std::int64_t step = 0;
  double sim_time = 0;
  double value = 0;                 // scalar
  std::vector<std::int64_t> dims;   // array
  std::vector<double> data;         // array, C order
};

bool valid_result_name(std::string_view s);
// Checks a result event's attrs and rewrites non-finite numbers as strings so
// they survive JSON storage. An error names the offending field.
Status normalise_result_attrs(json& attrs);
// The value carried by a stored (normalised) result event.
Result<ResultValue> result_value(const Event& e, std::int64_t seq);

}  // namespace vigil::controller
