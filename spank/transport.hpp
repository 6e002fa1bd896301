// transport.hpp — how the plugin's reporter reaches vigild, loaded on demand.
//
// Loading libzmq, libcrypto and libmunge costs every process that loads them
// ~4-9 ms (measured: docs/research/plugin-overhead.md), and Slurm loads the
// plugin into every sbatch, srun and slurmstepd. So vigil.so itself links none
// of them: the reporter thread in slurmstepd dlopen()s vigil_transport.so (the
// session client) the first time it has something to send. The boundary is a C
// ABI of bytes: CBOR batch in, CBOR ack out.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vigil/message.hpp"

namespace vigil::spank {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual Result<AckInfo> send(const std::vector<Event>& events) = 0;
  // A query ({op: ...}) answered by vigild; the reply's data.
  virtual Result<json> request(const json& req) = 0;
};

struct TransportOptions {
  std::string library;       // path of vigil_transport.so
  std::string endpoint;
  std::string munge_socket;
  int timeout_ms = 500;
  int connect_timeout_ms = 100;
};

// Never fails: a library that cannot be loaded makes every send fail (and the
// reporter spools), with the reason in the error.
std::unique_ptr<Transport> make_transport(const TransportOptions& opts);

// Where vigil_transport.so is when nobody says: next to the .so that contains
// this function.
std::string default_transport_path();

}  // namespace vigil::spank

// The C ABI vigil_transport.so exports.
extern "C" {
struct vigil_transport;
struct vigil_transport* vigil_transport_open(const char* endpoint, const char* munge_socket, int timeout_ms,
                                             int connect_timeout_ms);
// 0 on success with *ack (malloc'ed, free with vigil_transport_free) of *ack_len
// bytes; otherwise a negative error and *ack holds a NUL-terminated message.
int vigil_transport_send(struct vigil_transport* t, const char* body, unsigned long len, char** ack,
                         unsigned long* ack_len);
// A REQUEST (CBOR body) and its REPLY's data (CBOR), same conventions as send.
int vigil_transport_request(struct vigil_transport* t, const char* body, unsigned long len, char** reply,
                            unsigned long* reply_len);
void vigil_transport_free(char* p);
void vigil_transport_close(struct vigil_transport* t);
}
