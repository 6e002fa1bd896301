// lifecycle_module.cpp — see lifecycle_module.hpp.
#include "lifecycle_module.hpp"

namespace vigil::controller {

LifecycleModule::LifecycleModule(Core& core) : core_(core) {
  core_.host.on_event({EventType::submit, EventType::job_start, EventType::step_start, EventType::task_start,
                       EventType::job_end, EventType::step_silent, EventType::node_lost, EventType::node_recovered},
                      [this](const Event& e, std::int64_t, std::int64_t now) {
                        // An older attempt's end (its batch script killed by the
                        // requeue) must not end a job that recovery has decided about.
                        if (e.type == EventType::job_end || e.type == EventType::task_exit)
                          if (auto d = core_.decided.find(e.job); d != core_.decided.end() && e.restart <= d->second)
                            return;
                        if (auto in = input_of(e)) core_.lifecycle(e.job, *in, now);
                      });
}

std::optional<LifecycleInput> LifecycleModule::input_of(const Event& e) {
  using K = LifecycleInput::Kind;
  switch (e.type) {
    case EventType::submit: return LifecycleInput{K::submitted, ""};
    case EventType::job_start: return LifecycleInput{K::job_started, "on " + e.node};
    case EventType::step_start:
    case EventType::task_start: return LifecycleInput{K::task_started, ""};
    case EventType::job_end: {
      const int code = e.attrs.value("exit_code", -1);
      if (code == 0) return LifecycleInput{K::ended_ok, "batch script exit code 0"};
      if (e.attrs.contains("signal"))
        return LifecycleInput{K::ended_failed, "batch script killed by signal " + e.attrs["signal"].dump()};
      return LifecycleInput{K::ended_failed, "batch script exit code " + std::to_string(code)};
    }
    case EventType::step_silent:
    case EventType::node_lost:
      return LifecycleInput{K::trouble, std::string(event_type_name(e.type)) + " on " + e.node};
    case EventType::node_recovered: return LifecycleInput{K::all_clear, e.node + " heard from again"};
    default: return std::nullopt;
  }
}

}  // namespace vigil::controller
