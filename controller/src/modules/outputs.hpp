// outputs.hpp — the registry of a job's final outputs (ADR 0013).
//
// In:    `output` events from the SDK (path, name, step).
// Out:   after a digest on the worker, one `output_registered` event per
//        (job, name) and content (`supersedes` when the content changed); a
//        retried job's second copy of the same content under another path is
//        removed as the job's user; `outputs_duplicate` counted.
// State: per job, the newest registration of each name (loaded from the
//        store once per job).
// Fails: a file that cannot be digested is registered `ok: false` with the
//        reason; a copy that cannot be removed is logged.
#pragma once

#include <map>
#include <unordered_map>

#include "core.hpp"

namespace vigil::controller {

class OutputsModule : public Module {
 public:
  explicit OutputsModule(Core& core);
  const char* name() const override { return "outputs"; }

 private:
  struct Registered {
    std::string path, sha256;
  };
  std::map<std::string, Registered>& of(std::uint32_t job);
  void add(const Event& e);
  void digested(DigestWorker::Done& d, std::int64_t now);
  Core& core_;
  std::unordered_map<std::uint32_t, std::map<std::string, Registered>> outputs_;  // job -> name -> newest
};

}  // namespace vigil::controller
