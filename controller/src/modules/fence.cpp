// fence.cpp — see fence.hpp.
#include "fence.hpp"

#include <spdlog/spdlog.h>

namespace vigil::controller {

FenceModule::FenceModule(Core& core) : core_(core) {
  core_.host.on_validate([this](const Event& e, uid_t, std::int64_t) { return check(e); });
  core_.host.on_event({EventType::recovery}, [this](const Event& e, std::int64_t, std::int64_t) {
    const auto& a = e.attrs;
    if (!a.contains("fence_after_ns") || !a["fence_after_ns"].is_number_integer()) return;
    fences_[e.job] = Store::Fence{a.value("restart", 0u), a["fence_after_ns"].get<std::int64_t>()};
  });
  core_.host.on_tick([this](std::int64_t now) { note(now); });
  core_.host.on_retire([this](std::uint32_t job, std::int64_t) {  // ADR 0017: the new job is not fenced
    fences_.erase(job);
    std::erase_if(to_note_, [job](const auto& kv) { return kv.first.first == job; });
    std::erase_if(noted_, [job](const auto& k) { return k.first == job; });
  });
}

std::optional<Error> FenceModule::check(const Event& e) {
  if (e.type != EventType::result && e.type != EventType::checkpoint && e.type != EventType::output)
    return std::nullopt;
  auto it = fences_.find(e.job);
  if (it == fences_.end()) it = fences_.emplace(e.job, core_.store.fence(e.job)).first;
  const std::optional<Store::Fence>& f = it->second;
  if (!f || e.restart > f->restart || e.ts_ns <= f->after_ns) return std::nullopt;
  const auto key = std::make_pair(e.job, e.restart);
  if (!noted_.count(key) && !to_note_.count(key)) to_note_[key] = {event_type_name(e.type), e.ts_ns};
  return Error{Errc::superseded, "job " + std::to_string(e.job) + " attempt " + std::to_string(e.restart) +
                                     " was superseded: vigild gave up on it after its last sign of life (" +
                                     std::to_string((e.ts_ns - f->after_ns) / 1'000'000) +
                                     " ms before this " + event_type_name(e.type) + ")"};
}

// Outside the intake's group: one `recovery` event per fenced attempt.
void FenceModule::note(std::int64_t now) {
  if (to_note_.empty()) return;
  auto pending = std::exchange(to_note_, {});
  for (const auto& [key, r] : pending) {
    const auto& [job, restart] = key;
    spdlog::warn("job {}: attempt {} is superseded: its {} (and what follows) refused", job, restart, r.type);
    core_.record(job, EventType::recovery,
                 {{"by", "vigild"}, {"action", "fenced"}, {"restart", restart}, {"first_refused", r.type},
                  {"emitted_ns", r.ts_ns}},
                 now);
    noted_.insert(key);
  }
}

}  // namespace vigil::controller
