// identity.cpp — see identity.hpp.
#include "identity.hpp"

#include <charconv>

namespace vigil::controller {

namespace {
// Where a Slurm job state lies on one attempt's way: -1 for states that say
// nothing about it (UNKNOWN, or a name this build does not know).
int progress(const std::string& state) noexcept {
  if (state == "PENDING") return 0;
  if (state == "RUNNING" || state == "SUSPENDED") return 1;
  for (const char* end : {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                          "BOOT_FAIL", "DEADLINE"})
    if (state == end) return 2;
  return -1;
}
}  // namespace

bool slurm_reports_new_job(const KnownJob& known, std::int64_t submit_s, std::uint32_t restart,
                           const std::string& state) noexcept {
  if (known.slurm_state.empty()) return false;  // slurmctld never described the known job: adopt it
  if (known.submit_s != 0 && submit_s != 0 && submit_s == known.submit_s) return false;
  if (restart != known.restart) return restart < known.restart;
  const int was = progress(known.slurm_state), now = progress(state);
  return was >= 0 && now >= 0 && now < was;
}

bool start_means_new_job(const KnownJob& known, std::int64_t started_ns, std::uint32_t restart,
                         std::int64_t skew_ns) noexcept {
  if (!known.terminal || known.ended_ns == 0) return false;
  if (restart > known.restart) return false;  // the old job requeued
  return started_ns > known.ended_ns + skew_ns;
}

std::string job_key_name(JobKey key, std::uint32_t incarnation) {
  const std::string id = std::to_string(slurm_id_of(key));
  return !is_archived(key) && incarnation == 0 ? id : id + "." + std::to_string(incarnation);
}

std::optional<JobRef> parse_job_ref(std::string_view s) {
  auto num = [](std::string_view t) -> std::optional<std::uint32_t> {
    std::uint32_t v = 0;
    if (t.empty() || t.size() > 10) return std::nullopt;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size()) return std::nullopt;
    return v;
  };
  JobRef r;
  const auto dot = s.find('.');
  auto job = num(s.substr(0, dot));
  if (!job || *job == 0) return std::nullopt;
  r.job = *job;
  if (dot != std::string_view::npos) {
    auto inc = num(s.substr(dot + 1));
    if (!inc) return std::nullopt;
    r.incarnation = *inc;
  }
  return r;
}

}  // namespace vigil::controller
