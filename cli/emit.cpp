// emit.cpp — the shell SDK: `vigil emit`, `vigil report-checkpoint` and `vigil report-output`, for
// simulations driven by shell scripts. Same path as C/C++/Python: libvigil,
// authenticated as the caller; outside a Vigil job a no-op that succeeds.
#include <cstdio>
#include <sstream>

#include "commands.hpp"
#include "vigil/sdk.h"

namespace vigil::cli {
namespace {

// "64x64" -> {64, 64}
bool parse_dims(const std::string& text, std::vector<std::int64_t>& out) {
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, 'x')) {
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos || part.size() > 6) return false;
    out.push_back(std::stoll(part));
  }
  return !out.empty() && out.size() <= VIGIL_MAX_DIMS;
}

int finish(int timeout_ms, const char* what) {
  const bool active = vigil_sdk_active();
  vigil_sdk_finalize(timeout_ms);
  if (active && vigil_sdk_dropped() > 0) {
    std::fprintf(stderr, "vigil: %s: vigild did not take it\n", what);
    return 3;
  }
  return 0;
}

}  // namespace

int emit(const EmitOptions& o) {
  if (!o.stage.empty() && vigil_set_stage(o.stage.c_str()) < 0) {
    std::fprintf(stderr, "vigil: emit: invalid stage name (1-64 of A-Z a-z 0-9 _ . -)\n");
    return 2;
  }
  const char* units = o.units.empty() ? nullptr : o.units.c_str();
  int rc = 0;
  if (o.dims.empty()) {
    if (o.values.size() != 1) {
      std::fprintf(stderr, "vigil: emit: one value, or --dims AxB... with that many values\n");
      return 2;
    }
    rc = vigil_emit_scalar(o.name.c_str(), o.values[0], o.step, o.sim_time, units);
  } else {
    std::vector<std::int64_t> dims;
    std::int64_t count = 1;
    if (!parse_dims(o.dims, dims)) {
      std::fprintf(stderr, "vigil: emit: --dims must look like 64 or 64x64 (at most %d extents)\n", VIGIL_MAX_DIMS);
      return 2;
    }
    for (auto d : dims) count *= d;
    if (count != static_cast<std::int64_t>(o.values.size())) {
      std::fprintf(stderr, "vigil: emit: --dims %s needs %lld values, got %zu\n", o.dims.c_str(),
                   static_cast<long long>(count), o.values.size());
      return 2;
    }
    rc = vigil_emit_array(o.name.c_str(), o.values.data(), static_cast<int>(dims.size()), dims.data(), o.step,
                          o.sim_time, units);
  }
  if (rc < 0) {
    std::fprintf(stderr, "vigil: emit: invalid metric name or shape (names: 1-64 of A-Z a-z 0-9 _ . -; at most %d "
                         "elements)\n", VIGIL_MAX_ARRAY_ELEMENTS);
    return 2;
  }
  return finish(o.timeout_ms, "emit");
}

int report_checkpoint(const EmitOptions& o) {
  if (vigil_report_checkpoint(o.name.c_str(), o.step, o.sim_time) < 0) {
    std::fprintf(stderr, "vigil: report-checkpoint: the path must be 1-4096 characters\n");
    return 2;
  }
  return finish(o.timeout_ms, "report-checkpoint");
}

int report_output(const EmitOptions& o) {
  if (vigil_report_output(o.name.c_str(), o.output_name.empty() ? nullptr : o.output_name.c_str(), o.step) < 0) {
    std::fprintf(stderr, "vigil: report-output: the path and name must be 1-4096 characters\n");
    return 2;
  }
  return finish(o.timeout_ms, "report-output");
}

}  // namespace vigil::cli
