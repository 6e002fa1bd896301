// fence.hpp — a superseded attempt cannot change what its successor relies on
// (docs/adr/0022-fencing-superseded-attempts.md).
//
// In:    every authorised `result`, `checkpoint` and `output` event before it
//        is stored (on_validate); `recovery` decisions (requeue or fail for
//        trouble) carrying the fence the recovery module wrote
//        (`fence_after_ns`, Store::set_fence).
// Out:   a refusal with Errc::superseded for a report of attempt
//        `restart <= fence.restart` emitted (its ts_ns, the emitter's clock)
//        after `fence.after_ns`, the attempt's last sign of life before vigild
//        gave up on it. Senders drop a refused event and count it (SDK
//        `dropped`; the relay's batch is acknowledged); vigild counts it under
//        rejected{reason="superseded"}. Once per job and attempt, when
//        anything of the attempt emitted after its fence arrives from the
//        node vigild had lost (a heartbeat, a task's end, a report), a
//        `recovery` event `{"action": "fenced"}` on the timeline says that it
//        runs again there, and what came first (the recovery module reacts). What the attempt emitted up to its last sign of life is
//        legitimate and kept, even when it arrives late (a relay's spool).
// State: per job seen, its fence (read from the job's row once, then kept
//        current from recovery events); the notes to record at the next tick.
// Fails: a store that cannot be read leaves the job unfenced (logged): the
//        reports are accepted, as before this module.
#pragma once

#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "core.hpp"

namespace vigil::controller {

class FenceModule : public Module {
 public:
  explicit FenceModule(Core& core);
  const char* name() const override { return "fence"; }

 private:
  std::optional<Error> check(const Event& e);
  void note(std::int64_t now);
  Core& core_;
  std::unordered_map<std::uint32_t, std::optional<Store::Fence>> fences_;
  struct Refused {
    std::string type;
    std::int64_t ts_ns = 0;
    std::string node;
  };
  std::map<std::pair<std::uint32_t, std::uint32_t>, Refused> to_note_;  // (job, restart) -> the first seen
  std::set<std::pair<std::uint32_t, std::uint32_t>> noted_;             // timeline already says so
};

}  // namespace vigil::controller
