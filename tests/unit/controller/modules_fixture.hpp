// modules_fixture.hpp — the harness the module unit tests share: a real store
// in a temp directory, an injected clock, a fake Slurm that records what it is
// asked, events delivered the way the intake delivers them (validated, stored,
// dispatched, committed), and the digest worker's results handed back as the
// intake's loop does. Runs as root (as scripts/test does) to digest and delete
// as vigild.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "core.hpp"
#include "modules/reconcile.hpp"
#include "modules/registry.hpp"

namespace vigil::controller::modtest {

namespace fs = std::filesystem;
constexpr std::int64_t kS = 1'000'000'000;
constexpr std::uint32_t kBatch = 0xfffffffbu;
constexpr uid_t kUser = 65534;  // nobody: vigild digests and deletes as the job's user, never as root

// What takes a database back from schema 9 to 5 (the migration tests; 7 only
// deleted rows).
inline const char* const kUndoSchema6[] = {
    "ALTER TABLE jobs DROP COLUMN fence_restart", "ALTER TABLE jobs DROP COLUMN fence_after_ns",
    "ALTER TABLE jobs DROP COLUMN fence_node",
    "DROP INDEX jobs_to_forget", "ALTER TABLE jobs DROP COLUMN timeline_forgotten_ns",
    "ALTER TABLE jobs DROP COLUMN result_seq", "ALTER TABLE jobs DROP COLUMN dump_seq",
    "ALTER TABLE jobs DROP COLUMN results",    "DROP TABLE usage_job_hour",
    "DROP INDEX jobs_by_account",              "DROP INDEX jobs_by_user",
    "DROP INDEX jobs_by_study"};

struct FakeSlurm : SlurmControl {
  std::vector<std::string> calls;
  SlurmJobs jobs;
  std::vector<SlurmReservation> reservations;
  bool fail_requeue = false;
  Result<SlurmJobs> load_jobs(std::time_t) override { return jobs; }
  Status drain_node(const std::string& n, const std::string&) override { return call("drain " + n); }
  Status cancel_job(std::uint32_t j) override { return call("cancel " + std::to_string(j)); }
  Status down_node(const std::string& n, const std::string&) override { return call("down " + n); }
  Status requeue_job(std::uint32_t j) override {
    if (fail_requeue) return make_error(Errc::unavailable, "slurmctld says no");
    return call("requeue " + std::to_string(j));
  }
  Status exclude_nodes(std::uint32_t j, const std::string& n, bool release) override {
    return call("exclude " + std::to_string(j) + " " + n + (release ? " release" : ""));
  }
  Result<std::vector<SlurmReservation>> load_reservations() override { return reservations; }
  Result<int> kill_wait_s() override { return 5; }
  Status call(std::string c) {
    calls.push_back(std::move(c));
    return ok_status();
  }
  bool saw(const std::string& c) const { return std::find(calls.begin(), calls.end(), c) != calls.end(); }
};

struct ModulesTest : ::testing::Test {
  fs::path dir;
  std::int64_t now = 1'800'000'000LL * kS;
  FakeSlurm slurm;
  Config cfg;
  std::unique_ptr<Store> store;
  std::unique_ptr<Core> core;
  ModuleSet modules;

  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the modules digest and delete files as vigild (root) does";
    char tmpl[] = "/tmp/vigil-modules-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
    fs::create_directory(dir / "u");
    ASSERT_EQ(chown((dir / "u").c_str(), kUser, kUser), 0);
    cfg.database = (dir / "v.db").string();
    cfg.results_dir = "";  // dumps: dump_writer_test and the e2e tests
    cfg.retry_backoff_s = 5;
    cfg.restart_grace_s = 0;
    start();
  }
  void TearDown() override {
    stop();
    fs::remove_all(dir);
  }
  void start() {
    auto s = Store::open(cfg.database);
    ASSERT_TRUE(s) << s.error().what();
    store = std::move(*s);
    core = std::make_unique<Core>(cfg, *store, [this] { return now; }, &slurm);
    modules = load_modules(*core);
  }
  void stop() {
    if (!core) return;
    core->digests.drain();
    modules = {};
    core.reset();
    store.reset();
  }
  // As the intake does: stored in a group, dispatched, committed.
  void deliver(Event e) {
    if (e.ts_ns == 0) e.ts_ns = now;
    if (e.id == EventId{}) e.id = new_event_id();
    ASSERT_TRUE(core->transaction("test", [&] {
      if (auto refused = core->host.validate(e, 0, now)) return false;
      if (core->host.absorbs(e.type)) {
        core->dispatch(e, 0, now);
        return true;
      }
      auto r = store->insert(e, 0, now);
      if (!r) return false;
      core->dispatch(e, store->last_insert_seq(), now);
      return true;
    }));
  }
  Event ev(EventType t, std::uint32_t job, std::uint32_t step, const std::string& node, json attrs = json::object(),
           std::uint32_t restart = 0) {
    Event e;
    e.type = t;
    e.job = job;
    e.step = step;
    e.node = node;
    e.attrs = std::move(attrs);
    e.restart = restart;
    return e;
  }
  // A batch job on `nodes` (batch step on the first), heartbeat 1 s.
  void run_job(std::uint32_t job, std::vector<std::string> nodes, json options = json::object(),
               std::uint32_t restart = 0) {
    options["heartbeat_s"] = 1;
    deliver(ev(EventType::job_start, job, kBatch, nodes[0], {{"uid", kUser}, {"user", "nobody"}, {"options", options}},
               restart));
    for (const auto& n : nodes)
      deliver(ev(EventType::step_start, job, 0, n, {{"uid", kUser}, {"options", options}}, restart));
  }
  // Step 0's heartbeat on `node`, and the batch step's when it runs there.
  void beat(std::uint32_t job, const std::string& node, double cpu = 1, std::uint32_t restart = 0) {
    deliver(ev(EventType::heartbeat, job, 0, node, {{"interval_s", 1}, {"cpu_s", cpu}, {"rss_bytes", 4096}}, restart));
    for (const StepKey& k : core->monitor.steps_of(job))
      if (k.step == kBatch && k.node == node) deliver(ev(EventType::heartbeat, job, kBatch, node, {{"interval_s", 1}}, restart));
  }
  void advance(double s) {
    now += static_cast<std::int64_t>(s * 1e9);
    core->host.tick(now);
    core->digests.drain();
    for (auto& d : core->digests.take_done()) core->host.digest(d, now);
  }
  std::vector<StoredEvent> of(std::uint32_t job, EventType t) {
    auto r = store->events(job, 0, 1000, std::nullopt, t);
    return r ? *r : std::vector<StoredEvent>{};
  }
  std::string dump(std::uint32_t job) {
    std::string out;
    if (auto r = store->events(job, 0, 1000, std::nullopt))
      for (auto& e : *r) out += "\n" + std::string(event_type_name(e.event.type)) + " " + e.event.node + " " + e.event.attrs.dump();
    return out;
  }
  std::string state(std::uint32_t job) { return store->job_state(job).value_or(std::make_pair(std::string("?"), 0u)).first; }
  fs::path file(const std::string& name, const std::string& body) {
    const fs::path p = dir / "u" / name;
    std::ofstream(p) << body;
    EXPECT_EQ(chown(p.c_str(), kUser, kUser), 0);
    return p;
  }
  // `seconds` of time in which `alive` keep sending heartbeats (1 s cadence).
  void run_for(double seconds, std::uint32_t job, const std::vector<std::string>& alive) {
    for (double t = 0; t < seconds; t += 1) {
      advance(std::min(1.0, seconds - t));
      for (const auto& n : alive) beat(job, n, t);
    }
  }
  void checkpoint(std::uint32_t job, const fs::path& p, std::int64_t step, const std::string& node = "n1") {
    deliver(ev(EventType::checkpoint, job, 0, node, {{"path", p.string()}, {"step", step}}));
  }
};

}  // namespace vigil::controller::modtest
