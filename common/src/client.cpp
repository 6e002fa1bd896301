// client.cpp — see client.hpp.
#include "vigil/client.hpp"

#include <unistd.h>

#include <chrono>
#include <optional>
#include <zmq.hpp>

#include "vigil/crypto.hpp"
#include "vigil/munge_auth.hpp"
#include "vigil/wire.hpp"

namespace vigil {

struct Client::Impl {
  ClientOptions opts;
  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> sock;
  std::unique_ptr<HmacKey> key;
  std::uint64_t session = 0;
  std::uint64_t seq = 0;

  void reset_socket() {
    sock.reset();
    sock.emplace(ctx, zmq::socket_type::dealer);
    sock->set(zmq::sockopt::linger, 0);     // close never blocks
    sock->set(zmq::sockopt::immediate, 1);  // no queueing towards a dead peer
    sock->set(zmq::sockopt::sndhwm, 1000);
    sock->set(zmq::sockopt::reconnect_ivl, 100);
    sock->set(zmq::sockopt::reconnect_ivl_max, 2000);
    // A TCP connect that gets no answer (a cut network drops the SYN) is given
    // up after 2 s and tried again, instead of waiting out the kernel's SYN
    // retries (~2 min, exponential): after a cut heals, the relay reconnects
    // within seconds (docker-slurm-cluster chaos test, cut-relay).
    sock->set(zmq::sockopt::connect_timeout, 2000);
    sock->connect(opts.endpoint);
  }

  // Send one frame; wait for the answer with the same seq (older answers are
  // leftovers of timed-out calls and are dropped).
  Result<std::string> roundtrip(const std::string& frame, std::uint64_t want_seq) {
    try {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opts.timeout_ms);
      // With `immediate`, a send blocks while no connection exists: poll for writability.
      zmq::pollitem_t out{static_cast<void*>(*sock), 0, ZMQ_POLLOUT, 0};
      const int connect_ms = opts.connect_timeout_ms > 0 ? opts.connect_timeout_ms : opts.timeout_ms;
      if (zmq::poll(&out, 1, std::chrono::milliseconds(connect_ms)) == 0)
        return make_error(Errc::unavailable, "vigild at " + opts.endpoint + " is not reachable");
      if (!sock->send(zmq::buffer(frame), zmq::send_flags::dontwait))
        return make_error(Errc::unavailable, "send to " + opts.endpoint + " would block");
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        zmq::pollitem_t in{static_cast<void*>(*sock), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&in, 1, left) == 0) break;
        zmq::message_t msg;
        if (!sock->recv(msg, zmq::recv_flags::dontwait)) continue;
        auto f = decode_frame(msg.to_string_view());
        if (!f) continue;  // garbage from the network: ignore, keep waiting
        if (f->header.seq != want_seq) continue;
        return msg.to_string();
      }
    } catch (const zmq::error_t& e) {
      return make_error(Errc::unavailable, std::string("ZeroMQ: ") + e.what());
    }
    // The socket may now hold a stale request; a fresh socket keeps things simple.
    reset_socket();
    return make_error(Errc::unavailable, "no answer from vigild at " + opts.endpoint + " within " +
                                             std::to_string(opts.timeout_ms) + " ms");
  }

  Status hello() {
    HelloPayload hp;
    hp.key = random_key();
    hp.role = opts.role;
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    hp.host = host;
    hp.pid = getpid();
    MungeAuth munge(opts.munge_socket);
    auto cred = munge.encode(encode_hello_payload(hp));
    if (!cred) return cred.error();
    auto k = std::make_unique<HmacKey>(hp.key);
    const std::uint64_t s = ++seq;
    auto raw = roundtrip(encode_frame(FrameKind::hello, 0, s, cbor_encode(json{{"cred", *cred}}), nullptr), s);
    if (!raw) return raw.error();
    auto f = decode_frame(*raw);
    if (!f) return f.error();
    if (f->header.kind == FrameKind::error) return decode_error_body(f->body);
    if (f->header.kind != FrameKind::welcome) return make_error(Errc::malformed, "expected welcome");
    if (auto v = verify_frame(*f, *k); !v) return v.error();  // the server proved it read our key
    key = std::move(k);
    session = f->header.session;
    return ok_status();
  }

  // A tagged exchange; re-authenticates once if the server forgot the session.
  Result<std::string> call(FrameKind kind, const std::string& body, FrameKind want) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!key) {
        if (auto h = hello(); !h) return h.error();
      }
      const std::uint64_t s = ++seq;
      auto raw = roundtrip(encode_frame(kind, session, s, body, key.get()), s);
      if (!raw) {
        key.reset();  // next call starts a fresh session
        return raw.error();
      }
      auto f = decode_frame(*raw);
      if (!f) return f.error();
      if (f->header.kind == FrameKind::error) {
        Error e = decode_error_body(f->body);
        if (e.code == Errc::unknown_session || e.code == Errc::expired) {
          key.reset();
          continue;
        }
        return e;
      }
      if (auto v = verify_frame(*f, *key); !v) return v.error();
      if (f->header.kind != want)
        return make_error(Errc::malformed, std::string("expected ") + frame_kind_name(want));
      return std::string(f->body);
    }
    return make_error(Errc::unknown_session, "vigild keeps forgetting the session");
  }
};

Client::Client(ClientOptions opts) : p_(std::make_unique<Impl>()) {
  p_->opts = std::move(opts);
  p_->reset_socket();
}
Client::~Client() = default;

Status Client::connect() { return p_->hello(); }
bool Client::connected() const { return p_->key != nullptr; }
std::uint64_t Client::session() const { return p_->session; }
void Client::close() {
  p_->key.reset();
  p_->sock.reset();
}

Result<AckInfo> Client::send_batch(const std::vector<Event>& events) { return send_batch_body(encode_batch(events)); }

Result<AckInfo> Client::send_batch_body(const std::string& cbor_batch) {
  if (!p_->sock) p_->reset_socket();
  auto body = p_->call(FrameKind::batch, cbor_batch, FrameKind::ack);
  if (!body) return body.error();
  return decode_ack(*body);
}

Result<json> Client::request(const json& req) {
  if (!p_->sock) p_->reset_socket();
  auto body = p_->call(FrameKind::request, cbor_encode(req), FrameKind::reply);
  if (!body) return body.error();
  auto doc = cbor_decode(*body);
  if (!doc) return doc.error();
  if (!doc->is_object() || !doc->contains("ok")) return make_error(Errc::malformed, "reply without 'ok'");
  if ((*doc)["ok"].get<bool>()) return doc->contains("data") ? (*doc)["data"] : json();
  return decode_error_body(*body);
}

}  // namespace vigil
