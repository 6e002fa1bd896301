// http_api.hpp — vigild's operator surface over HTTP/JSON, plus /metrics.
//
//   GET /v1/health       unauthenticated: up, uptime, sessions, watched steps
//   GET /metrics         unauthenticated: Prometheus text (aggregates only)
//   GET /v1/jobs         MUNGE-authenticated: your jobs (admins: all)
//   GET /v1/jobs/{id}    MUNGE-authenticated: state, timeline (with hardware), transitions
//   GET /v1/nodes        MUNGE-authenticated: nodes with running steps, heartbeat ages
// Authentication: `Authorization: MUNGE <credential>` (e.g. `munge -n`); one
// fresh credential per request (munged rejects replays). Reads go through a
// second, read-only SQLite connection, so the intake thread is never blocked.
#pragma once

#include <memory>
#include <string>

#include "config.hpp"
#include "intake.hpp"

namespace vigil::controller {

class HttpApi {
 public:
  HttpApi(const Config& cfg, const Intake& intake);
  ~HttpApi();
  // Binds cfg.http_listen ("host:port", port 0 = any) and serves in a thread.
  Result<int> start();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

}  // namespace vigil::controller
