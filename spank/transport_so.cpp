// transport_so.cpp — vigil_transport.so: the session client behind a C ABI of
// bytes (see transport.hpp). Loaded only by the reporter thread in slurmstepd.
#include <cstdlib>
#include <cstring>

#include "transport.hpp"
#include "vigil/client.hpp"

struct vigil_transport {
  vigil::Client client;
};

namespace {
char* copy_out(const std::string& s, unsigned long* len) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  if (len) *len = s.size();
  return p;
}
}  // namespace

extern "C" {

__attribute__((visibility("default"))) vigil_transport* vigil_transport_open(const char* endpoint,
                                                                             const char* munge_socket, int timeout_ms,
                                                                             int connect_timeout_ms) {
  try {
    vigil::ClientOptions o;
    o.endpoint = endpoint ? endpoint : "";
    o.munge_socket = munge_socket ? munge_socket : "";
    o.role = "plugin";
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = connect_timeout_ms;
    return new vigil_transport{vigil::Client(std::move(o))};
  } catch (...) {
    return nullptr;
  }
}

__attribute__((visibility("default"))) int vigil_transport_send(vigil_transport* t, const char* body,
                                                                unsigned long len, char** ack,
                                                                unsigned long* ack_len) {
  *ack = nullptr;
  try {
    auto r = t->client.send_batch_body(std::string(body, len));
    if (!r) {
      *ack = copy_out(r.error().what(), ack_len);
      return -2;
    }
    *ack = copy_out(vigil::encode_ack(*r), ack_len);
    return 0;
  } catch (const std::exception& e) {
    *ack = copy_out(e.what(), ack_len);
    return -3;
  }
}

__attribute__((visibility("default"))) int vigil_transport_request(vigil_transport* t, const char* body,
                                                                   unsigned long len, char** reply,
                                                                   unsigned long* reply_len) {
  *reply = nullptr;
  try {
    auto req = vigil::cbor_decode(std::string_view(body, len));
    if (!req) {
      *reply = copy_out(req.error().what(), reply_len);
      return -1;
    }
    auto r = t->client.request(*req);
    if (!r) {
      *reply = copy_out(r.error().what(), reply_len);
      return -2;
    }
    *reply = copy_out(vigil::cbor_encode(*r), reply_len);
    return 0;
  } catch (const std::exception& e) {
    *reply = copy_out(e.what(), reply_len);
    return -3;
  }
}

__attribute__((visibility("default"))) void vigil_transport_free(char* p) { std::free(p); }

__attribute__((visibility("default"))) void vigil_transport_close(vigil_transport* t) { delete t; }

}  // extern "C"
