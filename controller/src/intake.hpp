// intake.hpp — vigild's front door: one ZeroMQ ROUTER socket for plugin, SDK and CLI.
//
// Contract, per frame kind:
//   HELLO   -> MUNGE credential decoded by munged; on success a session (key,
//              uid, gid, role) and a tagged WELCOME; otherwise ERROR with reason.
//   BATCH   -> tag verified, seq must grow, events authorised one by one, all
//              frames drained in one loop turn are committed in ONE transaction
//              (group commit), then each sender gets its ACK.
//   REQUEST -> read-only queries, answered from committed state (REPLY).
// Every stored event goes to the modules (modules/registry.cpp) through the
// dispatch table (module.hpp); REQUESTs are answered by the module that
// registered their op. Between turns the modules' timers run.
// Every rejection is counted by reason; nothing a client sends can stop intake.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config.hpp"
#include "core.hpp"
#include "heartbeat_monitor.hpp"
#include "metrics.hpp"
#include "slurm_api.hpp"
#include "store.hpp"

namespace vigil::controller {

class Intake {
 public:
  // `slurm` (may be null) is used to drain lost nodes when configured.
  Intake(Config cfg, Store& store, Clock clock = wall_clock_ns, SlurmControl* slurm = nullptr);
  ~Intake();
  // Binds the listen endpoint; returns the real endpoint (port 0 resolved).
  Result<std::string> bind();
  // Serves until `stop` becomes true; checks it at least every 100 ms.
  void run(const std::atomic<bool>& stop);
  // Hands over the reloadable parts of a new config (admin group, session
  // limits); thread-safe, applied by the intake thread between loop turns.
  void reconfigure(const Config& cfg);
  const IntakeCounters& counters() const;
  // A copy of the numbers /metrics and /v1/health show; thread-safe (the intake
  // thread republishes it every loop turn).
  IntakeSnapshot snapshot() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

}  // namespace vigil::controller
