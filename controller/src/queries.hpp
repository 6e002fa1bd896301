// queries.hpp — the read side, shared by the ZeroMQ REPLYs and the HTTP API.
//
// Every query takes the caller's identity (from MUNGE) and filters to the
// caller's own jobs unless the caller is an admin; asking for someone else's job
// is `denied`, an unknown one too (so job ids of others cannot be probed).
#pragma once

#include <sys/types.h>

#include <optional>

#include "store.hpp"

namespace vigil::controller {

struct Caller {
  uid_t uid = static_cast<uid_t>(-1);
  bool admin = false;
  std::optional<uid_t> only() const { return admin ? std::nullopt : std::optional<uid_t>(uid); }
};

bool is_admin(uid_t uid, gid_t gid, const std::string& admin_group);

json event_json(const StoredEvent& s);
json job_json(const JobRow& r);

Result<json> query_jobs(Store& store, const Caller& who, int limit);
// The job row with its timeline (events) and its state transitions.
Result<json> query_job(Store& store, const Caller& who, JobKey job, int limit);
Result<json> query_events(Store& store, const Caller& who, std::optional<JobKey> job, std::int64_t after,
                          int limit);

}  // namespace vigil::controller
