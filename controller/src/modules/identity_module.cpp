// identity_module.cpp — see identity_module.hpp.
#include "identity_module.hpp"

namespace vigil::controller {

IdentityModule::IdentityModule(Core& core) : core_(core) {
  core_.host.on_validate([this](const Event& e, uid_t, std::int64_t now) -> std::optional<Error> {
    if (e.type != EventType::job_start) return std::nullopt;
    auto known = core_.store.known_job(e.job);
    if (!known || !start_means_new_job(*known, e.ts_ns, e.restart)) return std::nullopt;
    if (core_.store.has_event(e.id)) return std::nullopt;  // a replay of the old job's own start
    core_.retire(e.job,
                 "a batch script started on " + e.node + " in attempt " + std::to_string(e.restart) +
                     " after job " + std::to_string(e.job) + " had ended: a new job under this id",
                 now);
    return std::nullopt;
  });
}

}  // namespace vigil::controller
