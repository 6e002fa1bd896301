// module.cpp — the dispatch table (see module.hpp).
#include "module.hpp"

#include <spdlog/spdlog.h>

namespace vigil::controller {

void ModuleHost::on_event(std::initializer_list<EventType> types, EventFn fn) {
  for (EventType t : types) event_[t].push_back(fn);
}

void ModuleHost::on_state(std::optional<JobState> to, StateFn fn) { state_.emplace_back(to, std::move(fn)); }

void ModuleHost::on_request(const std::string& op, RequestFn fn) {
  if (request_.count(op)) throw std::logic_error("two modules answer request '" + op + "'");
  request_[op] = std::move(fn);
}

std::optional<Error> ModuleHost::validate(const Event& e, uid_t sender, std::int64_t now) {
  for (const ValidateFn& fn : validate_)
    if (auto err = fn(e, sender, now)) return err;
  return std::nullopt;
}

void ModuleHost::event(const Event& e, std::int64_t seq, std::int64_t now) {
  auto it = event_.find(e.type);
  if (it == event_.end()) return;
  for (const EventFn& fn : it->second) fn(e, seq, now);
}

void ModuleHost::state(const StateChange& c, std::int64_t now) {
  for (const auto& [to, fn] : state_)
    if (!to || *to == c.to) fn(c, now);
}

Status ModuleHost::precommit() {
  for (const auto& fn : precommit_)
    if (auto s = fn(); !s) return s;
  return ok_status();
}

void ModuleHost::committed() {
  for (const VoidFn& fn : commit_) fn();
}

void ModuleHost::aborted() {
  for (const VoidFn& fn : abort_) fn();
}

void ModuleHost::slurm_view(const std::vector<SlurmJob>& changed, std::int64_t now) {
  for (const SlurmViewFn& fn : view_) fn(changed, now);
}

void ModuleHost::tick(std::int64_t now) {
  for (const TickFn& fn : tick_) fn(now);
}

bool ModuleHost::request(const std::string& op, const Caller& who, const json& req, Reply reply) {
  auto it = request_.find(op);
  if (it == request_.end()) return false;
  it->second(who, req, std::move(reply));
  return true;
}

void ModuleHost::digest(DigestWorker::Done& d, std::int64_t now) {
  auto it = digest_.find(d.kind);
  if (it == digest_.end()) return (void)spdlog::error("no module takes digest results of kind {}", static_cast<int>(d.kind));
  it->second(d, now);
}

void ModuleHost::retiring(std::uint32_t job, std::int64_t now) {
  for (const RetireFn& fn : retire_) fn(job, now);
}

std::vector<std::string> ModuleHost::ops() const {
  std::vector<std::string> out;
  for (const auto& [op, fn] : request_) out.push_back(op);
  return out;
}

}  // namespace vigil::controller
