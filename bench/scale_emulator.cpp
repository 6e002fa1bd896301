// scale_emulator — many nodes' relays against one vigild (scripts/bench scale).
//
// Emulates `--nodes` compute nodes, each one relay session of its own (role
// plugin, as root, a MUNGE credential each, the real wire protocol), carrying
// what the plugin on that node would send for the one simulation step running
// there. The nodes are split into `--sims` simulations (jobs) of nodes/sims
// nodes each:
//   - at the start, each node's step_start (and the batch host's job_start);
//   - every `--heartbeat` s, each node's heartbeat (interval, cumulative CPU
//     seconds, RSS), and the batch step's on the batch host;
//   - every second, `--results` scalar values per simulation, from its batch
//     host, as the SDK sends them (kind scalar, name, stage, step, sim_t, v);
//   - from `--loss-start` s on, every `--loss-every` s one node (each time of
//     another simulation) stops sending: a node lost, its time noted.
// Afterwards it asks vigild for each lost node's `node_lost` event and reports
// detection = the event's time (vigild's clock) minus the time the node last
// sent (the same host's clock): a node dying right after a heartbeat, the
// worst case (scripts/bench detect kills at a random phase instead).
//
// Sessions are spread over `--threads` threads; each sends a node's batch and
// waits for its ACK, like a relay. Prints one JSON object.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vigil/client.hpp"

using namespace vigil;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t kBatchStep = 0xfffffffbu;

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Options {
  ClientOptions client;
  int nodes = 1000, sims = 100, threads = 8, heartbeat_s = 1, results_per_s = 10, losses = 10;
  double seconds = 600, loss_start_s = 60, loss_every_s = 30;
  std::uint32_t first_job = 700000;
};

struct Node {
  std::unique_ptr<Client> client;
  std::string name;
  std::uint32_t job = 0;
  bool batch_host = false;
  double cpu_s = 0;
  std::int64_t step = 0;        // the simulation's step counter (batch host only)
  std::int64_t last_ns = 0;     // when it last sent (wall clock)
  std::int64_t silent_ns = 0;   // its last send, once it has stopped (0: alive)
};

Event make(EventType t, const Node& n, std::uint32_t step, json attrs) {
  Event e;
  e.id = new_event_id();
  e.type = t;
  e.ts_ns = wall_ns();
  e.job = n.job;
  e.step = step;
  e.node = n.name;
  e.attrs = std::move(attrs);
  return e;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.client.role = "plugin";
  o.client.timeout_ms = 5000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--endpoint") o.client.endpoint = v;
    else if (a == "--munge-socket") o.client.munge_socket = v;
    else if (a == "--nodes") o.nodes = std::atoi(v.c_str());
    else if (a == "--sims") o.sims = std::atoi(v.c_str());
    else if (a == "--threads") o.threads = std::atoi(v.c_str());
    else if (a == "--heartbeat") o.heartbeat_s = std::atoi(v.c_str());
    else if (a == "--results") o.results_per_s = std::atoi(v.c_str());
    else if (a == "--losses") o.losses = std::atoi(v.c_str());
    else if (a == "--seconds") o.seconds = std::atof(v.c_str());
    else if (a == "--loss-start") o.loss_start_s = std::atof(v.c_str());
    else if (a == "--loss-every") o.loss_every_s = std::atof(v.c_str());
    else {
      std::fprintf(stderr, "scale_emulator: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (o.nodes < o.sims || o.sims < 1 || o.threads < 1 || o.heartbeat_s < 1 || o.losses > o.sims) {
    std::fprintf(stderr, "scale_emulator: need nodes >= sims >= losses, sims, threads, heartbeat >= 1\n");
    return 2;
  }

  // The nodes and their sessions (one HELLO, one MUNGE credential each).
  std::vector<Node> nodes(static_cast<std::size_t>(o.nodes));
  const int per_sim = o.nodes / o.sims;
  for (int i = 0; i < o.nodes; ++i) {
    Node& n = nodes[static_cast<std::size_t>(i)];
    n.client = std::make_unique<Client>(o.client);
    n.name = "e" + std::to_string(i + 1);
    const int sim = std::min(i / per_sim, o.sims - 1);
    n.job = o.first_job + static_cast<std::uint32_t>(sim);
    n.batch_host = i % per_sim == 0 && i / per_sim < o.sims;
    if (auto s = n.client->connect(); !s) {
      std::fprintf(stderr, "scale_emulator: node %s: %s\n", n.name.c_str(), s.error().what().c_str());
      return 1;
    }
  }
  // Which node falls silent when: the last node of simulations 0, 1, 2, ...
  std::vector<std::pair<double, std::size_t>> schedule;
  for (int k = 0; k < o.losses; ++k)
    schedule.emplace_back(o.loss_start_s + k * o.loss_every_s,
                          static_cast<std::size_t>(std::min(o.nodes, (k + 1) * per_sim) - 1));

  std::atomic<std::uint64_t> sent{0}, failed{0};
  std::mutex mu;
  std::vector<double> acks;
  const auto t0 = SteadyClock::now();
  const auto end = t0 + std::chrono::duration<double>(o.seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<double> lat;
      auto send = [&](Node& n, const std::vector<Event>& evs) {
        const auto b0 = SteadyClock::now();
        auto r = n.client->send_batch(evs);
        if (!r || !r->rejected.empty()) {
          failed++;
          return;
        }
        lat.push_back(std::chrono::duration<double>(SteadyClock::now() - b0).count() * 1e3);
        sent += evs.size();
      };
      for (std::size_t i = static_cast<std::size_t>(t); i < nodes.size(); i += static_cast<std::size_t>(o.threads)) {
        Node& n = nodes[i];
        json opts = {{"heartbeat_s", o.heartbeat_s}};
        std::vector<Event> evs;
        if (n.batch_host) evs.push_back(make(EventType::job_start, n, kBatchStep, {{"uid", 0}, {"options", opts}}));
        evs.push_back(make(EventType::step_start, n, 0, {{"uid", 0}, {"options", opts}}));
        send(n, evs);
      }
      for (long tick = 1;; ++tick) {
        const auto due = t0 + std::chrono::seconds(tick);
        if (due > end) break;
        std::this_thread::sleep_until(due);
        const double elapsed = std::chrono::duration<double>(SteadyClock::now() - t0).count();
        for (std::size_t i = static_cast<std::size_t>(t); i < nodes.size(); i += static_cast<std::size_t>(o.threads)) {
          Node& n = nodes[i];
          if (n.silent_ns) continue;
          // Falls silent right after its last heartbeat: the worst case for
          // detection, which is measured from that heartbeat.
          for (const auto& [at, victim] : schedule)
            if (victim == i && elapsed >= at) n.silent_ns = n.last_ns;
          if (n.silent_ns) continue;
          std::vector<Event> evs;
          if (tick % o.heartbeat_s == 0) {
            n.cpu_s += o.heartbeat_s * 0.98;
            const json hb = {{"interval_s", o.heartbeat_s}, {"cpu_s", n.cpu_s}, {"rss_bytes", 512 << 20}};
            evs.push_back(make(EventType::heartbeat, n, 0, hb));
            if (n.batch_host) evs.push_back(make(EventType::heartbeat, n, kBatchStep, {{"interval_s", o.heartbeat_s}}));
          }
          if (n.batch_host)
            for (int r = 0; r < o.results_per_s; ++r) {
              ++n.step;
              evs.push_back(make(EventType::result, n, 0,
                                 {{"kind", "scalar"}, {"name", "m" + std::to_string(r % 20)}, {"stage", "main"},
                                  {"step", n.step}, {"sim_t", static_cast<double>(n.step) * 0.01},
                                  {"v", 1.0 / static_cast<double>(n.step)}}));
            }
          if (!evs.empty()) {
            send(n, evs);
            n.last_ns = wall_ns();
          }
        }
      }
      std::lock_guard<std::mutex> g(mu);
      acks.insert(acks.end(), lat.begin(), lat.end());
    });
  }
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - t0).count();

  // Detection of each silenced node, from its job's timeline.
  std::this_thread::sleep_for(std::chrono::seconds(3 * o.heartbeat_s + 2));
  ClientOptions q = o.client;
  q.role = "cli";
  Client cli(q);
  std::vector<double> detect;
  int missed = 0;
  std::string per_node;
  for (const auto& [at, victim] : schedule) {
    const Node& n = nodes[victim];
    if (!n.silent_ns) continue;
    // The job's timeline (`vigil show`): result values are counted there, not
    // listed, so the reply stays small however long the run.
    auto r = cli.request({{"op", "job"}, {"job", n.job}});
    double d = -1;
    if (!r) std::fprintf(stderr, "scale_emulator: job %u: %s\n", n.job, r.error().what().c_str());
    if (r && r->contains("timeline"))
      for (const json& e : (*r)["timeline"])
        if (e.value("type", "") == "node_lost" && e.value("node", "") == n.name) {
          d = static_cast<double>(e["ts_ns"].get<std::int64_t>() - n.silent_ns) / 1e9;
          break;
        }
    if (d < 0) missed++;
    else detect.push_back(d);
    per_node += (per_node.empty() ? "" : ", ") + std::string("{\"node\": \"") + n.name + "\", \"detect_s\": " +
                std::to_string(d) + "}";
  }
  // vigild's own view: sessions open, frames refused by reason (a session
  // expired for the per-uid cap shows as unknown_session and a new HELLO).
  std::string status = "null";
  if (auto st = cli.request({{"op", "status"}}); st)
    status = json{{"sessions", st->value("sessions", json())}, {"rejected", st->value("rejected", json())}}.dump();
  std::printf("{\"vigild\": %s, \"nodes\": %d, \"sims\": %d, \"heartbeat_s\": %d, \"results_per_s_per_sim\": %d, \"seconds\": %.1f, "
              "\"events_acked\": %llu, \"events_per_s\": %.0f, \"failed_batches\": %llu, \"ack_p50_ms\": %.2f, "
              "\"ack_p99_ms\": %.2f, \"losses\": %zu, \"undetected\": %d, \"detect_p50_s\": %.3f, "
              "\"detect_p99_s\": %.3f, \"detect_max_s\": %.3f, \"detections\": [%s]}\n",
              status.c_str(), o.nodes, o.sims, o.heartbeat_s, o.results_per_s, elapsed, static_cast<unsigned long long>(sent.load()),
              static_cast<double>(sent.load()) / elapsed, static_cast<unsigned long long>(failed.load()),
              pct(acks, 0.5), pct(acks, 0.99), schedule.size(), missed, pct(detect, 0.5), pct(detect, 0.99),
              detect.empty() ? 0.0 : *std::max_element(detect.begin(), detect.end()), per_node.c_str());
  return missed == 0 && failed == 0 ? 0 : 1;
}
