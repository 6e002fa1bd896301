// longrun.cpp — `scripts/bench longrun`: months of virtual time through
// vigild's real modules and real store, in one process (issue 11).
//
// The workload: `--sims` simulations (100), each on `--nodes-per-sim` nodes
// (5) for the whole run, heartbeats every 5 s from every step on every node
// (step 0 on each node, the batch step on the first), 20 scalar results per
// simulated minute and one 64x64 array per simulated hour each, an hourly
// checkpoint each (a real 4 KiB file, digested and retained like any other),
// and `--failures-per-day` node losses (3) with their recoveries: the node
// goes silent, the modules detect it, mark it down and requeue the job, the
// bench's Slurm restarts it a minute later on a spare node.
//
// Events reach the modules as the intake hands them over (validated, stored,
// dispatched, committed), one group commit per simulated minute; the modules
// are ticked once a simulated minute. The clock is virtual. The result dumps
// are synced every `--sync-s` virtual seconds (3600; vigild's default is 60:
// at this pace that would be 100 fsyncs per 20 ms of real time), so up to an
// hour of values is still in the store when the run ends; the bench waits for
// the dump writer once a simulated hour, as it keeps up at a live pace.
//
// Prints a progress line per simulated quarter day on stderr and, at the end,
// one JSON object on stdout: days simulated (fewer than planned when
// `--max-real-s` stopped it), store size (after a WAL checkpoint), result
// files' size, peak RSS, the p50/p99 latency of a job query (`vigil show`)
// and of a usage query (an account's CPU- and node-hours per hour over 30
// days), wall time, the store's growth per day over the second half of the
// run and the size that growth leads to by the planned end.
#include <malloc.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "core.hpp"
#include "modules/registry.hpp"
#include "modules/results_module.hpp"
#include "queries.hpp"

namespace fs = std::filesystem;
using namespace vigil;
using namespace vigil::controller;

namespace {

constexpr std::int64_t kS = 1'000'000'000;
constexpr std::uint32_t kBatch = 0xfffffffbu;
constexpr uid_t kUser = 65534;  // nobody: vigild digests and deletes checkpoints as the job's user

struct Args {
  std::string dir;
  double days = 182.5;
  int sims = 100, nodes_per_sim = 5, spares = 20, heartbeat_s = 5, scalars = 20;
  int array_every_s = 3600, checkpoint_every_s = 3600;
  double failures_per_day = 3;
  int sync_s = 3600;  // results_sync_s, on the virtual clock
  bool dumps = true;  // --no-dumps: values stay in the store (a baseline)
  double max_real_s = 0;  // > 0: stop (and measure) after this much real time
  unsigned seed = 1;
};

// Slurm as the modules see it: what they ask is recorded; a requeue is
// carried out by the bench (restart on a spare node a minute later).
struct BenchSlurm : SlurmControl {
  std::vector<std::uint32_t> requeued;
  std::uint64_t calls = 0;
  Result<SlurmJobs> load_jobs(std::time_t) override { return SlurmJobs{false, 0, {}}; }
  Status drain_node(const std::string&, const std::string&) override { return count(); }
  Status cancel_job(std::uint32_t) override { return count(); }
  Status down_node(const std::string&, const std::string&) override { return count(); }
  Status requeue_job(std::uint32_t j) override {
    requeued.push_back(j);
    return count();
  }
  Status exclude_nodes(std::uint32_t, const std::string&, bool) override { return count(); }
  Result<std::vector<SlurmReservation>> load_reservations() override { return std::vector<SlurmReservation>{}; }
  Result<int> kill_wait_s() override { return 5; }
  Status count() {
    ++calls;
    return ok_status();
  }
};

struct Sim {
  std::uint32_t job = 0, restart = 0;
  std::vector<std::string> nodes;
  std::string dead;                 // a node that stopped answering (this attempt)
  bool running = false;
  std::int64_t restart_at = 0;      // requeued: starts again then
  double cpu = 0;
  std::int64_t step = 0;
  std::vector<Event> beats;         // one per (step, node): mutated, not rebuilt
  std::vector<Event> values;        // the scalar metrics
};

std::uint64_t file_bytes(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

std::uint64_t tree_bytes(const fs::path& root) {
  std::uint64_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) n += it->file_size(ec);
  return n;
}

long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

class Bench {
 public:
  explicit Bench(Args a) : a_(std::move(a)), rng_(a_.seed) {}

  int run() {
    fs::create_directories(a_.dir);
    ckpt_dir_ = fs::path(a_.dir) / "ckpt";
    fs::create_directories(ckpt_dir_);
    if (chown(ckpt_dir_.c_str(), kUser, kUser) != 0) return fail("chown " + ckpt_dir_.string());
    cfg_.database = (fs::path(a_.dir) / "vigild.db").string();
    cfg_.results_dir = a_.dumps ? (fs::path(a_.dir) / "results").string() : "";
    cfg_.results_sync_s = a_.sync_s;
    cfg_.restart_grace_s = 0;
    cfg_.reconcile_interval_s = 0;
    cfg_.default_retries = 100000;  // months-long runs: a site sets the budget for that
    cfg_.retry_backoff_s = 5;
    cfg_.checkpoint_keep = 2;
    auto s = Store::open(cfg_.database);
    if (!s) return fail(s.error().what());
    store_ = std::move(*s);
    core_ = std::make_unique<Core>(cfg_, *store_, [this] { return now_; }, &slurm_);
    modules_ = load_modules(*core_);
    start_all();
    const auto t0 = std::chrono::steady_clock::now();
    const auto minutes = static_cast<std::int64_t>(a_.days * 1440);
    std::exponential_distribution<double> gap(a_.failures_per_day / 86400.0);
    std::int64_t next_failure = begin_ + static_cast<std::int64_t>(gap(rng_) * kS);
    for (std::int64_t m = 0; m < minutes; ++m) {
      const std::int64_t minute = begin_ + m * 60 * kS;
      while (next_failure < minute + 60 * kS) {
        lose_a_node();
        next_failure += static_cast<std::int64_t>(gap(rng_) * kS);
      }
      if (!core_->transaction("minute", [&] { return one_minute(minute); })) return fail("a minute's group failed");
      now_ = minute + 60 * kS;
      core_->host.tick(now_);
      core_->digests.drain();
      for (auto& d : core_->digests.take_done()) core_->host.digest(d, now_);
      restarts();
      if ((m + 1) % 60 == 0 && a_.dumps) modules_.results->drain();  // the writer keeps up, as it does at a live pace
      if ((m + 1) % 360 == 0) progress(static_cast<double>(m + 1) / 1440.0, t0);
      if ((m + 1) % 60 == 0 && a_.max_real_s > 0 &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > a_.max_real_s) {
        std::fprintf(stderr, "longrun: stopped after %.0f s of real time (--max-real-s)\n", a_.max_real_s);
        break;
      }
    }
    if (a_.dumps) modules_.results->drain();
    finish(t0);
    return 0;
  }

 private:
  int fail(const std::string& why) {
    std::fprintf(stderr, "longrun: %s\n", why.c_str());
    return 1;
  }

  void start_all() {
    for (int i = 0; i < a_.sims * a_.nodes_per_sim + a_.spares; ++i) {
      char name[16];
      std::snprintf(name, sizeof name, "n%04d", i + 1);
      (i < a_.sims * a_.nodes_per_sim ? busy_ : spare_).push_back(name);
    }
    sims_.resize(static_cast<std::size_t>(a_.sims));
    for (int i = 0; i < a_.sims; ++i) {
      Sim& s = sims_[static_cast<std::size_t>(i)];
      s.job = 1000 + static_cast<std::uint32_t>(i);
      for (int k = 0; k < a_.nodes_per_sim; ++k) s.nodes.push_back(busy_[static_cast<std::size_t>(i * a_.nodes_per_sim + k)]);
      for (int k = 0; k < a_.scalars; ++k) {
        Event e = ev(EventType::result, s.job, 0, s.nodes[0], 0);
        e.attrs = {{"kind", "scalar"}, {"name", "metric" + std::to_string(k)}, {"units", "1"},
                   {"step", 0}, {"sim_t", 0.0}, {"v", 0.0}};
        s.values.push_back(std::move(e));
      }
    }
    core_->transaction("start", [&] {
      for (Sim& s : sims_) {
        launch(s, begin_);
        if (auto r = store_->set_account(s.job, "acct" + std::to_string(s.job % 10)); !r) return false;
      }
      return true;
    });
  }

  Event ev(EventType t, std::uint32_t job, std::uint32_t step, const std::string& node, std::uint32_t restart) {
    Event e;
    e.type = t;
    e.job = job;
    e.step = step;
    e.node = node;
    e.restart = restart;
    return e;
  }

  // An id as the emitters make them (new_event_id: time, then 8 random bytes),
  // but on the virtual clock and from the bench's PRNG: the emitters run on
  // other machines, so their getrandom(2) calls are not vigild's cost (they
  // were a tenth of this process's time). The time part is strictly
  // increasing, as nanosecond wall clocks are: with the thousands of events of
  // one virtual instant sharing a time, the random part alone ordered them and
  // the UNIQUE index on ids filled its pages at random (a run on 2026-12-04
  // grew the store 1.5x faster).
  EventId emitter_id(std::int64_t t) {
    last_id_ns_ = std::max(last_id_ns_ + 1, t);
    return make_event_id(static_cast<std::uint64_t>(last_id_ns_), id_rng_());
  }

  // As the intake does, inside the open group. A report of an attempt vigild
  // has given up on (its other nodes ran on until the requeue) is refused
  // `superseded` and dropped, as the SDK and relay drop it (ADR 0022).
  bool deliver(Event& e, std::int64_t t, uid_t sender = 0) {
    e.ts_ns = t;
    e.id = emitter_id(t);
    if (auto refused = core_->host.validate(e, sender, t)) {
      if (refused->code != Errc::superseded) return false;
      ++superseded_;
      return true;
    }
    if (core_->host.absorbs(e.type)) {
      core_->dispatch(e, 0, t);
      return true;
    }
    auto r = store_->insert(e, sender, t);
    if (!r) return false;
    core_->dispatch(e, store_->last_insert_seq(), t);
    return true;
  }

  void launch(Sim& s, std::int64_t t) {
    json options = {{"heartbeat_s", a_.heartbeat_s}, {"label", "study" + std::to_string(s.job % 7) + "/s" +
                                                                  std::to_string(s.job)}};
    Event start = ev(EventType::job_start, s.job, kBatch, s.nodes[0], s.restart);
    start.attrs = {{"uid", kUser}, {"user", "nobody"}, {"options", options}};
    deliver(start, t);
    s.beats.clear();
    for (const auto& n : s.nodes) {
      Event st = ev(EventType::step_start, s.job, 0, n, s.restart);
      st.attrs = {{"uid", kUser}, {"options", options}};
      deliver(st, t);
      Event hb = ev(EventType::heartbeat, s.job, 0, n, s.restart);
      hb.attrs = {{"interval_s", a_.heartbeat_s}, {"cpu_s", 0.0}, {"rss_bytes", 2LL << 30}};
      s.beats.push_back(std::move(hb));
    }
    Event batch = ev(EventType::heartbeat, s.job, kBatch, s.nodes[0], s.restart);
    batch.attrs = {{"interval_s", a_.heartbeat_s}};
    s.beats.push_back(std::move(batch));
    s.cpu = 0;
    s.dead.clear();
    s.running = true;
    for (auto& v : s.values) v.restart = s.restart;
  }

  bool one_minute(std::int64_t minute) {
    for (int k = 0; k < 60 / a_.heartbeat_s; ++k) {
      const std::int64_t t = minute + static_cast<std::int64_t>(k) * a_.heartbeat_s * kS;
      for (Sim& s : sims_) {
        if (!s.running) continue;
        s.cpu += 32.0 * a_.heartbeat_s;  // 32 cores busy on each node
        for (Event& hb : s.beats) {
          if (hb.node == s.dead) continue;
          if (hb.step == 0) hb.attrs["cpu_s"] = s.cpu;
          deliver(hb, t);
        }
      }
    }
    const std::int64_t t = minute + 30 * kS;
    const bool hour = (minute - begin_) % (static_cast<std::int64_t>(a_.checkpoint_every_s) * kS) == 0;
    const bool array = (minute - begin_) % (static_cast<std::int64_t>(a_.array_every_s) * kS) == 0;
    for (Sim& s : sims_) {
      if (!s.running) continue;
      ++s.step;
      for (std::size_t k = 0; k < s.values.size(); ++k) {
        Event& v = s.values[k];
        v.attrs["step"] = s.step;
        v.attrs["sim_t"] = static_cast<double>(s.step) * 60.0;
        v.attrs["v"] = std::sin(static_cast<double>(s.step) * 0.001 + static_cast<double>(k));
        if (!deliver(v, t, kUser)) return false;
      }
      if (array) {
        Event f = ev(EventType::result, s.job, 0, s.nodes[0], s.restart);
        json data = json::array();
        for (int i = 0; i < 64 * 64; ++i) data.push_back(static_cast<double>((s.step + i) % 1000) * 0.5);
        f.attrs = {{"kind", "array"}, {"name", "field"}, {"units", "K"}, {"step", s.step},
                   {"sim_t", static_cast<double>(s.step) * 60.0}, {"dims", {64, 64}}, {"data", std::move(data)}};
        if (!deliver(f, t, kUser)) return false;
      }
      if (hour) checkpoint(s, t);
    }
    return true;
  }

  void checkpoint(Sim& s, std::int64_t t) {
    const fs::path p = ckpt_dir_ / (std::to_string(s.job) + "-" + std::to_string(s.step) + ".ckpt");
    {
      std::ofstream out(p, std::ios::binary);
      std::string body(4096, static_cast<char>('a' + s.step % 26));
      out << body;
    }
    if (chown(p.c_str(), kUser, kUser) != 0) std::perror("chown checkpoint");
    Event c = ev(EventType::checkpoint, s.job, 0, s.nodes[0], s.restart);
    c.attrs = {{"path", p.string()}, {"step", s.step}};
    deliver(c, t, kUser);
  }

  void lose_a_node() {
    std::vector<Sim*> candidates;
    for (Sim& s : sims_)
      if (s.running && s.dead.empty()) candidates.push_back(&s);
    if (candidates.empty()) return;
    Sim& s = *candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng_)];
    s.dead = s.nodes[std::uniform_int_distribution<std::size_t>(0, s.nodes.size() - 1)(rng_)];
    ++losses_;
  }

  // Jobs the modules requeued: the old attempt ends, a minute later the next
  // one starts with a spare in place of the dead node (which is repaired and
  // becomes a spare).
  void restarts() {
    for (std::uint32_t job : std::exchange(slurm_.requeued, {})) {
      Sim& s = sims_[job - 1000];
      if (!s.running) continue;
      s.running = false;
      s.restart_at = now_ + 60 * kS;
      core_->transaction("requeued", [&] {  // Slurm ends the attempt's steps where it can reach them
        for (const auto& n : s.nodes) {
          if (n == s.dead) continue;
          Event step_end = ev(EventType::step_end, s.job, 0, n, s.restart);
          step_end.attrs = {{"exit_code", 15}};
          deliver(step_end, now_);
        }
        Event end = ev(EventType::job_end, s.job, kBatch, s.nodes[0], s.restart);
        end.attrs = {{"exit_code", 15}};
        return s.nodes[0] == s.dead || deliver(end, now_);
      });
      ++requeues_;
    }
    for (Sim& s : sims_) {
      if (s.running || s.restart_at == 0 || now_ < s.restart_at) continue;
      if (!s.dead.empty() && !spare_.empty()) {
        std::replace(s.nodes.begin(), s.nodes.end(), s.dead, spare_.front());
        spare_.erase(spare_.begin());
        spare_.push_back(s.dead);
      }
      ++s.restart;
      s.restart_at = 0;
      core_->transaction("restart", [&] {
        launch(s, now_);
        return true;
      });
    }
  }

  void progress(double day, std::chrono::steady_clock::time_point t0) {
    sizes_.emplace_back(day, (file_bytes(cfg_.database) + file_bytes(cfg_.database + "-wal")) / 1e6);
    const double real = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const struct mallinfo2 mi = mallinfo2();  // heap in use vs held free by malloc
    std::fprintf(stderr, "longrun: day %.2f: store %.1f MB (+wal %.1f MB), results %s, rss peak %.0f MiB "
                 "(heap in use %.0f MiB, free in arenas %.0f MiB), losses %d, requeues %d, %.0f s real\n",
                 day, file_bytes(cfg_.database) / 1e6, file_bytes(cfg_.database + "-wal") / 1e6,
                 std::fmod(day, 7.0) == 0 ? (std::to_string(static_cast<long long>(tree_bytes(cfg_.results_dir) / 1000000)) + " MB").c_str()
                              : "-",
                 static_cast<double>(peak_rss_kb()) / 1024.0, static_cast<double>(mi.uordblks + mi.hblkhd) / 1048576.0,
                 static_cast<double>(mi.fordblks) / 1048576.0, losses_, requeues_, real);
  }

  void finish(std::chrono::steady_clock::time_point t0) {
    const double real = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Job queries (vigil show) and usage queries (an account, hourly, 30 days).
    std::vector<double> job_ms, usage_ms;
    const Caller admin{0, true};
    for (int i = 0; i < 200; ++i) {
      const std::uint32_t job = 1000 + std::uniform_int_distribution<std::uint32_t>(0, static_cast<std::uint32_t>(a_.sims) - 1)(rng_);
      const auto q0 = std::chrono::steady_clock::now();
      auto r = query_job(*store_, admin, job, 1000);
      job_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - q0).count());
      if (!r) std::fprintf(stderr, "longrun: job query: %s\n", r.error().what().c_str());
    }
    const std::int64_t end_s = now_ / kS;
    for (int i = 0; i < 100; ++i) {
      const std::int64_t to = end_s - std::uniform_int_distribution<std::int64_t>(0, std::max<std::int64_t>(0, end_s - begin_ / kS - 30 * 86400))(rng_);
      json req = {{"account", "acct" + std::to_string(i % 10)}, {"from", to - 30 * 86400}, {"to", to}, {"interval_s", 3600}};
      const auto q0 = std::chrono::steady_clock::now();
      bool ok = false;
      core_->host.request("usage", admin, req, [&](Result<json> r) { ok = r && (*r)["cpu_hours"].get<double>() > 0; });
      usage_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - q0).count());
      if (!ok) std::fprintf(stderr, "longrun: a usage query found nothing: %s\n", req.dump().c_str());
    }
    const std::int64_t events = store_->event_count();
    const double days = static_cast<double>(now_ - begin_) / (86400.0 * kS);
    // Growth over the second half of the run (least squares on the size every
    // quarter day), and where it leads by the end of the planned run.
    double rate = 0;
    {
      double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
      for (const auto& [d, mb] : sizes_)
        if (d >= days / 2) {
          n += 1, sx += d, sy += mb, sxx += d * d, sxy += d * mb;
        }
      if (n >= 2 && n * sxx - sx * sx > 0) rate = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    }
    modules_ = {};
    core_.reset();
    store_.reset();
    sqlite3* db = nullptr;  // fold the WAL in, then measure
    if (sqlite3_open(cfg_.database.c_str(), &db) == SQLITE_OK)
      sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    const double store_mb = (file_bytes(cfg_.database) + file_bytes(cfg_.database + "-wal")) / 1e6;
    std::printf("{\"days\": %.2f, \"sims\": %d, \"nodes\": %d, \"store_mb\": %.1f, \"results_mb\": %.1f, "
                "\"events_stored\": %lld, \"peak_rss_mib\": %.0f, \"job_query_ms_p50\": %.2f, \"job_query_ms_p99\": %.2f, "
                "\"usage_query_ms_p50\": %.2f, \"usage_query_ms_p99\": %.2f, \"node_losses\": %d, \"requeues\": %d, "
                "\"reports_superseded\": %lld, "
                "\"real_s\": %.0f, \"planned_days\": %.2f, \"mb_per_day_second_half\": %.2f, "
                "\"projected_store_mb\": %.1f}\n",
                days, a_.sims, a_.sims * a_.nodes_per_sim, store_mb, tree_bytes(cfg_.results_dir) / 1e6,
                static_cast<long long>(events), static_cast<double>(peak_rss_kb()) / 1024.0, pct(job_ms, 0.5),
                pct(job_ms, 0.99), pct(usage_ms, 0.5), pct(usage_ms, 0.99), losses_, requeues_,
                static_cast<long long>(superseded_), real, a_.days, rate,
                store_mb + rate * std::max(0.0, a_.days - days));
  }

  Args a_;
  std::mt19937_64 rng_;
  std::mt19937_64 id_rng_{0x5eed};  // event ids (emitter_id)
  std::int64_t last_id_ns_ = 0;
  Config cfg_;
  BenchSlurm slurm_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Core> core_;
  ModuleSet modules_;
  fs::path ckpt_dir_;
  std::vector<Sim> sims_;
  std::vector<std::string> busy_, spare_;
  const std::int64_t begin_ = 1'800'000'000LL * kS;
  std::int64_t now_ = 1'800'000'000LL * kS;
  int losses_ = 0, requeues_ = 0;
  std::int64_t superseded_ = 0;  // reports refused: their attempt was given up on
  std::vector<std::pair<double, double>> sizes_;  // (day, store MB incl. WAL) every quarter day
};

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--no-dumps") {
      a.dumps = false;
      --i;
      continue;
    }
    const std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (k == "--dir") a.dir = v;
    else if (k == "--days") a.days = std::stod(v);
    else if (k == "--sims") a.sims = std::stoi(v);
    else if (k == "--nodes-per-sim") a.nodes_per_sim = std::stoi(v);
    else if (k == "--failures-per-day") a.failures_per_day = std::stod(v);
    else if (k == "--seed") a.seed = static_cast<unsigned>(std::stoul(v));
    else if (k == "--sync-s") a.sync_s = std::stoi(v);
    else if (k == "--max-real-s") a.max_real_s = std::stod(v);
    else {
      std::fprintf(stderr, "usage: vigil_longrun --dir DIR [--days D] [--sims N] [--nodes-per-sim K] "
                           "[--failures-per-day F] [--seed S] [--sync-s S] [--max-real-s S] [--no-dumps]\n");
      return 2;
    }
  }
  // vigild's log lines go to stderr (stdout is the result), warnings and up.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("longrun"));
  spdlog::set_level(spdlog::level::warn);
  if (a.dir.empty() || geteuid() != 0) {
    std::fprintf(stderr, "vigil_longrun: needs --dir and root (checkpoints are digested as their user)\n");
    return 2;
  }
  return Bench(a).run();
}
