// loadgen — many authenticated senders against vigild, as a separate process.
//
// Each sender thread opens its own MUNGE session and sends batches of ~100-byte
// events (default type task_exit, which vigild stores as a row; heartbeats
// are absorbed into the steps and usage tables instead, ADR 0016), `inflight` frames outstanding at a time is 1 (each
// waits for its ACK, like the plugin). A batch that fails (timeout, vigild
// restarting) is re-sent with the same event ids until acknowledged: that is
// what makes a SIGKILL of vigild safe, and what the crash test checks.
//
// Usage: loadgen --endpoint E --munge-socket S [--senders N] [--batch B]
//                [--seconds T] [--job J] [--acked-file F] [--type EVENT_TYPE]
// Prints one JSON object: events acknowledged, events/s, ack latency p50/p99.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vigil/client.hpp"

using namespace vigil;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  ClientOptions base;
  base.role = "bench";
  base.timeout_ms = 2000;
  int senders = 8, batch = 100;
  double seconds = 10;
  std::uint32_t job = 900000;
  std::string acked_file;
  EventType type = EventType::task_exit;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--endpoint") base.endpoint = v;
    else if (a == "--munge-socket") base.munge_socket = v;
    else if (a == "--senders") senders = std::atoi(v.c_str());
    else if (a == "--batch") batch = std::atoi(v.c_str());
    else if (a == "--seconds") seconds = std::atof(v.c_str());
    else if (a == "--job") job = static_cast<std::uint32_t>(std::atoll(v.c_str()));
    else if (a == "--acked-file") acked_file = v;
    else if (a == "--type") {
      auto t = event_type_from_name(v);
      if (!t) {
        std::fprintf(stderr, "loadgen: %s\n", t.error().what().c_str());
        return 2;
      }
      type = *t;
    }
    else {
      std::fprintf(stderr, "loadgen: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  std::atomic<std::uint64_t> acked{0}, failures{0};
  std::mutex mu;
  std::vector<double> latencies;
  std::vector<std::string> acked_ids;
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int s = 0; s < senders; ++s) {
    threads.emplace_back([&, s] {
      Client c(base);
      std::vector<double> lat;
      std::vector<std::string> ids;
      std::uint64_t n = 0;
      while (Clock::now() < end) {
        std::vector<Event> evs;
        for (int i = 0; i < batch; ++i) {
          Event e;
          e.id = new_event_id();
          e.type = type;
          e.ts_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
          e.job = job + static_cast<std::uint32_t>(s);
          e.step = 0;
          e.node = "load" + std::to_string(s);
          e.attrs = {{"tasks", 1}, {"cpu_s", static_cast<double>(n++)}, {"rss_bytes", 1 << 20}, {"interval_s", 5}};
          evs.push_back(std::move(e));
        }
        // Until acknowledged: the same ids, so a retry after a crash is a no-op.
        for (int attempt = 0; attempt < 100; ++attempt) {
          const auto b0 = Clock::now();
          auto r = c.send_batch(evs);
          if (r && r->rejected.empty()) {
            lat.push_back(std::chrono::duration<double>(Clock::now() - b0).count());
            acked += evs.size();
            if (!acked_file.empty())
              for (const auto& e : evs) ids.push_back(event_id_hex(e.id));
            break;
          }
          failures++;
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
      std::lock_guard<std::mutex> g(mu);
      latencies.insert(latencies.end(), lat.begin(), lat.end());
      acked_ids.insert(acked_ids.end(), ids.begin(), ids.end());
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, static_cast<std::size_t>(p * latencies.size()))];
  };
  if (!acked_file.empty()) {
    std::ofstream out(acked_file);
    for (const auto& id : acked_ids) out << id << "\n";
  }
  std::printf("{\"senders\": %d, \"batch\": %d, \"seconds\": %.2f, \"events_acked\": %llu, \"events_per_s\": %.0f, "
              "\"ack_p50_ms\": %.2f, \"ack_p99_ms\": %.2f, \"failed_attempts\": %llu}\n",
              senders, batch, elapsed, static_cast<unsigned long long>(acked.load()), acked / elapsed,
              pct(0.5) * 1e3, pct(0.99) * 1e3, static_cast<unsigned long long>(failures.load()));
  return acked > 0 ? 0 : 1;
}
