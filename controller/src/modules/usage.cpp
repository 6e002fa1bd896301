// usage.cpp — see usage.hpp.
#include "usage.hpp"

#include <pwd.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace vigil::controller {

UsageModule::UsageModule(Core& core) : core_(core) {
  core_.host.on_event({EventType::heartbeat}, [this](const Event& e, std::int64_t, std::int64_t) { on_heartbeat(e); });
  core_.host.on_event({EventType::step_end, EventType::job_end}, [this](const Event& e, std::int64_t, std::int64_t) {
    last_.erase({e.job, e.step, e.node});
    if (e.type == EventType::job_end) std::erase_if(node_seen_, [&](const auto& kv) { return kv.first.first == e.job; });
  });
  core_.host.on_precommit([this] { return flush(); });
  core_.host.on_abort([this] {
    // The senders resend what was rolled back: start again from the store.
    staged_.clear();
    last_.clear();
    node_seen_.clear();
  });
  core_.host.on_tick([this](std::int64_t now) { compact(now); });
  // The old job under a reused id (ADR 0017): its usage of this group is
  // written under it now; the new job's counters start from nothing.
  core_.host.on_retire([this](std::uint32_t job, std::int64_t) {
    for (auto it = staged_.begin(); it != staged_.end();) {
      if (std::get<0>(it->first) != job) {
        ++it;
        continue;
      }
      if (auto s = core_.store.add_usage(it->second); !s) spdlog::error("usage: {}", s.error().what());
      it = staged_.erase(it);
    }
    std::erase_if(last_, [job](const auto& kv) { return kv.first.job == job; });
    std::erase_if(node_seen_, [job](const auto& kv) { return kv.first.first == job; });
  });
  core_.host.on_request("usage", [this](const Caller& who, const json& req, Reply reply) { reply(query(who, req)); });
}

void UsageModule::on_heartbeat(const Event& e) {
  if (e.node.empty() || e.step == kNoStep || !e.attrs.contains("cpu_s") || !e.attrs["cpu_s"].is_number()) return;
  const double cpu = e.attrs["cpu_s"].get<double>();
  const StepKey key{e.job, e.step, e.node};
  auto it = last_.find(key);
  if (it == last_.end()) {
    Sample s;
    if (auto row = core_.store.step_row(e.job, e.step, e.node); row && row->heartbeats > 0)
      s = {row->last_ns, row->cpu_s, row->restart};
    it = last_.emplace(key, s).first;
  }
  Sample& prev = it->second;
  if (e.ts_ns <= prev.ts_ns) return;  // a replay: counted already
  const bool fresh = e.restart != prev.restart || cpu < prev.cpu_s;  // a new attempt's counters
  const double cpu_delta = fresh ? cpu : cpu - prev.cpu_s;
  prev = {e.ts_ns, cpu, e.restart};

  const int interval = std::max(1, e.attrs.value("interval_s", 5));
  std::int64_t& seen = node_seen_[{e.job, e.node}];
  if (seen == 0)
    if (auto row = core_.store.step_row(e.job, e.step, e.node); row && row->heartbeats > 0) seen = row->last_ns;
  double node_s = interval;  // the first heartbeat on a node stands for one interval
  if (seen > 0) node_s = e.ts_ns > seen ? std::min<double>(static_cast<double>(e.ts_ns - seen) / 1e9, 3.0 * interval) : 0;
  seen = std::max(seen, e.ts_ns);

  const std::int64_t t = e.ts_ns / 1'000'000'000;
  const std::int64_t bucket = t - t % kMinute;
  Store::UsageRow& u = staged_[{e.job, e.node, bucket}];
  u.job = e.job;
  u.node = e.node;
  u.bucket_s = bucket;
  u.width_s = kMinute;
  u.cpu_s += cpu_delta;
  u.node_s += node_s;
  u.samples++;
  if (e.attrs.contains("rss_bytes") && e.attrs["rss_bytes"].is_number_integer())
    u.rss_max = std::max(u.rss_max, e.attrs["rss_bytes"].get<std::int64_t>());
}

Status UsageModule::flush() {
  for (const auto& [key, row] : staged_)
    if (auto s = core_.store.add_usage(row); !s) return s;
  core_.counters.usage_rows += staged_.size();
  staged_.clear();
  return ok_status();
}

// Once an hour: minute rows past their days become hourly rows.
void UsageModule::compact(std::int64_t now) {
  if (now < next_compact_ns_) return;
  next_compact_ns_ = now + 3600LL * 1'000'000'000;
  const std::int64_t before = now / 1'000'000'000 - static_cast<std::int64_t>(core_.cfg.usage_minute_days) * 86400;
  std::int64_t folded = 0;
  const bool done = core_.transaction("usage compaction", [&] {
    auto r = core_.store.compact_usage(before, compacted_to_s_);
    if (!r) {
      spdlog::error("usage compaction: {}", r.error().what());
      return false;
    }
    folded = *r;
    return true;
  });
  if (done) compacted_to_s_ = before - before % 3600;
  if (folded) spdlog::info("usage: {} minute rows folded into hourly rows", folded);
}

// {op: usage, from, to (epoch s; default the last 24 h), interval_s (default
// 3600), job?, user?, account?, study?}: CPU-hours and node-hours per interval.
Result<json> UsageModule::query(const Caller& who, const json& req) {
  const std::int64_t now = core_.clock() / 1'000'000'000;
  auto num = [&](const char* k, std::int64_t dflt) -> Result<std::int64_t> {
    if (!req.contains(k)) return dflt;
    if (!req[k].is_number_integer()) return make_error(Errc::malformed, std::string("usage: '") + k + "' must be an integer");
    return req[k].get<std::int64_t>();
  };
  auto from = num("from", now - 86400), to = num("to", now + 60), width = num("interval_s", 3600);
  if (!from) return from.error();
  if (!to) return to.error();
  if (!width) return width.error();
  if (*width < 60 || *width > 366LL * 86400) return make_error(Errc::malformed, "usage: interval_s must be in [60, 31622400]");
  if (*to <= *from) return make_error(Errc::malformed, "usage: 'to' must be after 'from'");
  Store::UsageFilter f;
  for (const char* k : {"user", "account", "study"}) {
    if (!req.contains(k)) continue;
    if (!req[k].is_string()) return make_error(Errc::malformed, std::string("usage: '") + k + "' must be a string");
    (std::string(k) == "user" ? f.user : std::string(k) == "account" ? f.account : f.study) = req[k].get<std::string>();
  }
  if (req.contains("job")) {
    if (!req["job"].is_number_unsigned() || req["job"].get<std::uint64_t>() > 0xffffffffu)
      return make_error(Errc::malformed, "usage: job must be a 32-bit number");
    f.job = req["job"].get<std::uint32_t>();
  }
  if (!who.admin) {
    // Users see their own usage only (a PI's view of a whole account is an admin's, for now).
    struct passwd* pw = getpwuid(who.uid);
    if (!pw) return make_error(Errc::denied, "usage: unknown user");
    if (f.user && *f.user != pw->pw_name) return make_error(Errc::denied, "usage: only your own usage");
    f.user = pw->pw_name;
  }
  auto points = core_.store.usage(f, *from, *to, *width);
  if (!points) return points.error();
  json arr = json::array();
  double cpu = 0, node = 0;
  for (const auto& p : *points) {
    arr.push_back({{"t", p.t_s}, {"cpu_hours", p.cpu_hours}, {"node_hours", p.node_hours}});
    cpu += p.cpu_hours;
    node += p.node_hours;
  }
  return json{{"from", *from}, {"to", *to}, {"interval_s", *width}, {"points", arr},
              {"cpu_hours", cpu}, {"node_hours", node}};
}

}  // namespace vigil::controller
