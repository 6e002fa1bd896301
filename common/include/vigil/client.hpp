// client.hpp — one authenticated session with vigild over ZeroMQ.
//
// connect() sends HELLO (a MUNGE credential sealing a fresh session key) and
// waits for WELCOME; afterwards every frame is HMAC-tagged and numbered. Calls
// are synchronous with a bounded timeout and never throw: the plugin runs this
// inside slurmstepd, where a hang or an exception would hurt a job. On an
// "unknown session" answer (vigild restarted) the client re-authenticates once.
// Not thread-safe: one Client per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vigil/message.hpp"
#include "vigil/result.hpp"

namespace vigil {

struct ClientOptions {
  std::string endpoint;        // e.g. tcp://head:7810
  std::string munge_socket;    // empty: libmunge default
  std::string role = "cli";    // plugin | sdk | cli | bench
  int timeout_ms = 2000;       // per round trip
  // How long to wait for a TCP connection to vigild before calling it down
  // (0: same as timeout_ms). The plugin keeps this short so an outage costs a
  // job almost nothing.
  int connect_timeout_ms = 0;
};

class Client {
 public:
  explicit Client(ClientOptions opts);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Status connect();
  bool connected() const;
  Result<AckInfo> send_batch(const std::vector<Event>& events);
  // The same with the batch already encoded (encode_batch), as a relay has it.
  Result<AckInfo> send_batch_body(const std::string& cbor_batch);
  // A request {op: ..., ...}; returns the reply's "data" or the server's error.
  Result<json> request(const json& req);
  void close();
  std::uint64_t session() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

}  // namespace vigil
