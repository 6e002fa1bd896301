// slurm_api.hpp — the few slurmctld calls vigild makes, through libslurm.
//
// Kept behind an interface so policy and detection code never link libslurm
// and tests/simulators can supply their own cluster view.
#pragma once

#include <string>

#include "vigil/result.hpp"

namespace vigil::controller {

class SlurmControl {
 public:
  virtual ~SlurmControl() = default;
  // Drain a node with a reason (shown by `sinfo -R`).
  virtual Status drain_node(const std::string& node, const std::string& reason) = 0;
};

// The real one: libslurm, configured by SLURM_CONF or the default slurm.conf.
class LibSlurmControl : public SlurmControl {
 public:
  LibSlurmControl();
  Status drain_node(const std::string& node, const std::string& reason) override;
};

}  // namespace vigil::controller
