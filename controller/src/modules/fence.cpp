// fence.cpp — see fence.hpp.
#include "fence.hpp"

#include <spdlog/spdlog.h>

namespace vigil::controller {

FenceModule::FenceModule(Core& core) : core_(core) {
  core_.host.on_validate([this](const Event& e, uid_t, std::int64_t) { return check(e); });
  // A recovery decision wrote a fence (Store::set_fence, same transaction):
  // read it back rather than derive it again from the event.
  core_.host.on_event({EventType::recovery}, [this](const Event& e, std::int64_t, std::int64_t) {
    if (e.attrs.contains("fence_after_ns")) fences_[e.job] = core_.store.fence(e.job);
  });
  core_.host.on_tick([this](std::int64_t now) { note(now); });
  core_.host.on_retire([this](std::uint32_t job, std::int64_t) {  // ADR 0017: the new job is not fenced
    fences_.erase(job);
    std::erase_if(to_note_, [job](const auto& kv) { return kv.first.first == job; });
    std::erase_if(noted_, [job](const auto& k) { return k.first == job; });
  });
}

std::optional<Error> FenceModule::check(const Event& e) {
  if (e.node.empty()) return std::nullopt;  // only plugins, relays and the SDK speak for an attempt
  const bool report = e.type == EventType::result || e.type == EventType::checkpoint || e.type == EventType::output;
  auto it = fences_.find(e.job);
  if (it == fences_.end()) {
    if (!report) return std::nullopt;  // a job's row is read for reports only (not per heartbeat)
    it = fences_.emplace(e.job, core_.store.fence(e.job)).first;
  }
  const std::optional<Store::Fence>& f = it->second;
  if (!f || e.restart > f->restart || e.ts_ns <= f->after_ns) return std::nullopt;
  // The superseded attempt is running again where vigild had lost it (a
  // heartbeat, a task's end, a report from that node): said once on the
  // timeline; the recovery module watches for it. Its other nodes ran on all
  // along, until Slurm ended them: nothing new.
  const auto key = std::make_pair(e.job, e.restart);
  if ((f->node.empty() || f->node == e.node) && !noted_.count(key) && !to_note_.count(key))
    to_note_[key] = {event_type_name(e.type), e.ts_ns, e.node};
  if (!report) return std::nullopt;  // its lifecycle events are stale, not refused
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
    spdlog::warn("job {}: attempt {}, superseded, is running again on {} (its {}); its reports are refused", job,
                 restart, r.node, r.type);
    core_.record(job, EventType::recovery,
                 {{"by", "vigild"}, {"action", "fenced"}, {"restart", restart}, {"first_seen", r.type},
                  {"node", r.node}, {"emitted_ns", r.ts_ns}},
                 now);
    noted_.insert(key);
  }
}

}  // namespace vigil::controller
