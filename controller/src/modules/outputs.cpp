// outputs.cpp — see outputs.hpp.
#include "outputs.hpp"

#include <spdlog/spdlog.h>

namespace vigil::controller {

OutputsModule::OutputsModule(Core& core) : core_(core) {
  core_.host.on_event({EventType::output}, [this](const Event& e, std::int64_t, std::int64_t) { add(e); });
  // A new job under a reused id is not a retry of the old one (ADR 0017).
  core_.host.on_retire([this](std::uint32_t job, std::int64_t) { outputs_.erase(job); });
  core_.host.on_digest(DigestWorker::Task::Kind::output,
                       [this](DigestWorker::Done& d, std::int64_t now) { digested(d, now); });
  core_.host.on_digest(DigestWorker::Task::Kind::prune_output, [](DigestWorker::Done& d, std::int64_t) {
    if (d.error.empty()) spdlog::info("job {}: output {}: duplicate copy {} removed", d.job, d.name, d.entry.path);
    else spdlog::warn("job {}: output {}: duplicate copy not removed: {}", d.job, d.name, d.error);
  });
}

std::map<std::string, OutputsModule::Registered>& OutputsModule::of(std::uint32_t job) {
  auto it = outputs_.find(job);
  if (it != outputs_.end()) return it->second;
  auto& m = outputs_[job];
  if (auto evs = core_.store.events(job, 0, 100000, std::nullopt, EventType::output_registered))
    for (const StoredEvent& s : *evs)
      if (s.event.attrs.value("ok", false))
        m[s.event.attrs.value("name", std::string())] = {s.event.attrs.value("path", std::string()),
                                                         s.event.attrs.value("sha256", std::string())};
  return m;
}

void OutputsModule::add(const Event& e) {
  DigestWorker::Task t;
  t.kind = DigestWorker::Task::Kind::output;
  t.token = core_.token();
  t.job = e.job;
  t.owner = core_.facts(e.job).owner.uid;
  t.entry.path = e.attrs.value("path", std::string());
  t.entry.step = e.attrs.value("step", std::int64_t{0});
  t.entry.node = e.node;
  t.entry.restart = e.restart;
  t.entry.reported_ns = e.ts_ns;
  t.name = e.attrs.value("name", std::string());
  if (t.name.empty()) t.name = t.entry.path;
  core_.digests.submit(std::move(t));
}

void OutputsModule::digested(DigestWorker::Done& d, std::int64_t now) {
  auto& reg = of(d.job);
  json a = {{"by", "vigild"},         {"name", d.name},           {"path", d.entry.path}, {"step", d.entry.step},
            {"node", d.entry.node},   {"restart", d.entry.restart}, {"ok", d.error.empty()}};
  if (!d.error.empty()) {
    a["error"] = d.error;
    spdlog::warn("job {}: output {} not registered: {}", d.job, d.name, d.error);
    core_.record(d.job, EventType::output_registered, std::move(a), now);
    return;
  }
  auto it = reg.find(d.name);
  if (it != reg.end() && it->second.sha256 == d.entry.sha256) {
    core_.counters.outputs_duplicate++;
    spdlog::info("job {}: output {} (restart {}) is already registered with the same content", d.job, d.name,
                 d.entry.restart);
    if (d.entry.path != it->second.path) {
      const JobFacts& f = core_.facts(d.job);
      DigestWorker::Task t;
      t.kind = DigestWorker::Task::Kind::prune_output;
      t.token = core_.token();
      t.job = d.job;
      t.owner = f.owner.uid;
      t.group = f.owner.gid;
      t.entry = d.entry;
      t.name = d.name;
      t.why = "duplicate of " + it->second.path;
      core_.digests.submit(std::move(t));
    }
    return;
  }
  a["sha256"] = d.entry.sha256;
  a["bytes"] = d.entry.bytes;
  if (it != reg.end()) a["supersedes"] = it->second.sha256;  // same name, new content: a real change
  reg[d.name] = {d.entry.path, d.entry.sha256};
  core_.record(d.job, EventType::output_registered, std::move(a), now);
}

}  // namespace vigil::controller
