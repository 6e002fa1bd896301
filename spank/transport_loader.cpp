// transport_loader.cpp — the plugin's side of transport.hpp: dlopen on first use.
#include <dlfcn.h>

#include "transport.hpp"

namespace vigil::spank {
namespace {

class DlTransport final : public Transport {
 public:
  explicit DlTransport(TransportOptions o) : opts_(std::move(o)) {}
  ~DlTransport() override {
    if (handle_ && close_) close_(handle_);
    // The library stays loaded: its ZeroMQ threads may still be winding down.
  }

  Result<AckInfo> send(const std::vector<Event>& events) override {
    if (!handle_) {
      if (auto s = load(); !s) return s.error();
    }
    const std::string body = encode_batch(events);
    char* ack = nullptr;
    unsigned long len = 0;
    const int rc = send_(handle_, body.data(), body.size(), &ack, &len);
    std::string bytes = ack ? std::string(ack, len) : std::string();
    if (ack) free_(ack);
    if (rc != 0) {
      // The transport reports Error::what(): "code: message".
      const Errc code = errc_from_text(bytes);
      return make_error(code == Errc::internal ? Errc::unavailable : code, bytes.empty() ? "transport failed" : bytes);
    }
    return decode_ack(bytes);
  }

  Result<json> request(const json& req) override {
    if (!handle_) {
      if (auto s = load(); !s) return s.error();
    }
    if (!request_) return make_error(Errc::unavailable, "transport has no request function (older library)");
    const std::string body = cbor_encode(req);
    char* reply = nullptr;
    unsigned long len = 0;
    const int rc = request_(handle_, body.data(), body.size(), &reply, &len);
    std::string bytes = reply ? std::string(reply, len) : std::string();
    if (reply) free_(reply);
    if (rc != 0) {
      const Errc code = errc_from_text(bytes);
      return make_error(code == Errc::internal ? Errc::unavailable : code, bytes.empty() ? "transport failed" : bytes);
    }
    return cbor_decode(bytes);
  }

 private:
  Status load() {
    if (!lib_) {
      lib_ = dlopen(opts_.library.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!lib_) return make_error(Errc::unavailable, std::string("cannot load transport: ") + dlerror());
      open_ = reinterpret_cast<decltype(open_)>(dlsym(lib_, "vigil_transport_open"));
      send_ = reinterpret_cast<decltype(send_)>(dlsym(lib_, "vigil_transport_send"));
      free_ = reinterpret_cast<decltype(free_)>(dlsym(lib_, "vigil_transport_free"));
      close_ = reinterpret_cast<decltype(close_)>(dlsym(lib_, "vigil_transport_close"));
      request_ = reinterpret_cast<decltype(request_)>(dlsym(lib_, "vigil_transport_request"));  // optional
      if (!open_ || !send_ || !free_ || !close_) {
        lib_ = nullptr;
        return make_error(Errc::unavailable, opts_.library + " is not a Vigil transport");
      }
    }
    handle_ = open_(opts_.endpoint.c_str(), opts_.munge_socket.c_str(), opts_.timeout_ms, opts_.connect_timeout_ms);
    if (!handle_) return make_error(Errc::unavailable, "transport: cannot open a client");
    return ok_status();
  }

  TransportOptions opts_;
  void* lib_ = nullptr;
  vigil_transport* handle_ = nullptr;
  vigil_transport* (*open_)(const char*, const char*, int, int) = nullptr;
  int (*send_)(vigil_transport*, const char*, unsigned long, char**, unsigned long*) = nullptr;
  int (*request_)(vigil_transport*, const char*, unsigned long, char**, unsigned long*) = nullptr;
  void (*free_)(char*) = nullptr;
  void (*close_)(vigil_transport*) = nullptr;
};

}  // namespace

std::unique_ptr<Transport> make_transport(const TransportOptions& opts) {
  return std::make_unique<DlTransport>(opts);
}

std::string default_transport_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&default_transport_path), &info) == 0 || info.dli_fname == nullptr)
    return "vigil_transport.so";
  std::string self = info.dli_fname;
  const auto slash = self.rfind('/');
  return (slash == std::string::npos ? std::string() : self.substr(0, slash + 1)) + "vigil_transport.so";
}

}  // namespace vigil::spank
