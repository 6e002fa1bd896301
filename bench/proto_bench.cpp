// proto_bench — wire protocol v1 cost on one core: encode + HMAC tag + decode +
// verify + strict CBOR decode of ~100-byte events, plus the MUNGE session setup
// that authenticates them (measured, then amortised over the session).
//
// Usage: bench_proto --munge-socket PATH [--seconds S] [--batch B]
// Prints one JSON object per line; the last line is the headline result.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "vigil/message.hpp"
#include "vigil/munge_auth.hpp"
#include "vigil/wire.hpp"

using namespace vigil;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Event sample_event(std::uint32_t i) {
  Event e;
  e.id = new_event_id();
  e.type = EventType::result;
  e.ts_ns = 1700000000000000000LL + i;
  e.job = 4242;
  e.step = 0;
  e.task = 3;
  e.node = "n1";
  e.attrs = {{"name", "energy"}, {"v", 1.25 * i}, {"step", i}};
  return e;
}

// One session worth of traffic: returns messages/s for a given batch size.
double run(int batch, double seconds, std::size_t& event_bytes) {
  KeyBytes k = random_key();
  HmacKey client_key(k), server_key(k);
  std::vector<Event> events;
  for (int i = 0; i < batch; ++i) events.push_back(sample_event(static_cast<std::uint32_t>(i)));
  event_bytes = cbor_encode(event_to_json(events[0])).size();
  std::uint64_t seq = 0, msgs = 0;
  const auto t0 = Clock::now();
  auto t = t0;
  while (secs(t - t0) < seconds) {
    for (int rep = 0; rep < 64; ++rep) {
      for (auto& e : events) e.ts_ns++;  // encode real changing data each time
      std::string frame = encode_frame(FrameKind::batch, 7, ++seq, encode_batch(events), &client_key);
      auto f = decode_frame(frame);
      if (!f || !verify_frame(*f, server_key)) std::abort();
      auto b = decode_batch(f->body);
      if (!b || b->events.size() != events.size()) std::abort();
      msgs += events.size();
    }
    t = Clock::now();
  }
  return static_cast<double>(msgs) / secs(t - t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string munge_socket;
  double seconds = 3;
  int batch = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--munge-socket")) munge_socket = argv[i + 1];
    else if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(argv[i + 1]);
  }
  // MUNGE: what authenticating one session costs (encode at the client, decode
  // and replay check at vigild's munged).
  MungeAuth munge(munge_socket);
  const int creds = 200;
  HelloPayload hp;
  hp.key = random_key();
  hp.role = "bench";
  const auto m0 = Clock::now();
  for (int i = 0; i < creds; ++i) {
    auto c = munge.encode(encode_hello_payload(hp));
    if (!c) {
      std::fprintf(stderr, "bench_proto: MUNGE unavailable: %s\n", c.error().what().c_str());
      return 1;
    }
    auto id = munge.decode(*c);
    if (!id || !decode_hello_payload(id->payload)) {
      std::fprintf(stderr, "bench_proto: MUNGE decode failed\n");
      return 1;
    }
  }
  const double us_per_session = secs(Clock::now() - m0) / creds * 1e6;
  std::size_t ev_bytes = 0;
  const double single = run(1, seconds / 3, ev_bytes);
  const double batched = run(batch, seconds, ev_bytes);
  // A session lives up to an hour; even a 1-second session of `batched` rate
  // pays one credential, so the amortised rate is shown for 1 s.
  const double amortised_1s = batched / (1.0 + us_per_session * 1e-6);
  std::printf("{\"munge_session_setup_us\": %.1f, \"event_cbor_bytes\": %zu, \"msgs_per_s_frame_per_msg\": %.0f, "
              "\"msgs_per_s_batch%d\": %.0f, \"msgs_per_s_batch%d_incl_1_session_per_s\": %.0f}\n",
              us_per_session, ev_bytes, single, batch, batched, batch, amortised_1s);
  std::printf("{\"bench\": \"proto\", \"value\": %.0f, \"unit\": \"msgs/s\", \"goal\": \">= 200000 msgs/s on one core, "
              "authenticated, ~100-byte messages\"}\n",
              amortised_1s);
  return 0;
}
