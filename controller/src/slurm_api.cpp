// slurm_api.cpp — libslurm calls (see slurm_api.hpp).
//
// Built against the libslurm of Slurm 22.05 to 26.05 (docker-slurm-cluster
// builds and tests it on 22.05, 24.11 and 26.05). Where the API changed, the
// difference is kept in the small shims below, on SLURM_VERSION_NUMBER:
//   23.11  hostlist_t became a struct; its functions take a pointer
//   24.11  slurm_get_errno() removed (use errno, which it always returned)
//   25.11  job_desc_msg_t.job_id moved into step_id
//   26.05  slurm_requeue and slurm_kill_job take a slurm_step_id_t;
//          slurm_free_ctl_conf renamed slurm_free_conf
#include "slurm_api.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <ctime>

extern "C" {
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
}

#include <mutex>
#include <vector>

namespace vigil::controller {

namespace {

#define VIGIL_SLURM_AT_LEAST(a, b) (SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(a, b, 0))

#if VIGIL_SLURM_AT_LEAST(26, 5)
// SLURM_STEP_ID_INITIALIZER is a C compound literal: spelled out for C++.
slurm_step_id_t whole_job(std::uint32_t job) {
  slurm_step_id_t id{};
  id.sluid = 0;
  id.job_id = job;
  id.step_het_comp = NO_VAL;
  id.step_id = NO_VAL;
  return id;
}
int requeue(std::uint32_t job) { return slurm_requeue(whole_job(job), 0); }
int kill_job(std::uint32_t job, std::uint16_t sig) { return slurm_kill_job(whole_job(job), sig, 0); }
void free_conf(slurm_conf_t* conf) { slurm_free_conf(conf); }
#else
int requeue(std::uint32_t job) { return slurm_requeue(job, 0); }
int kill_job(std::uint32_t job, std::uint16_t sig) { return slurm_kill_job(job, sig, 0); }
void free_conf(slurm_conf_t* conf) { slurm_free_ctl_conf(conf); }
#endif

void set_job_id(job_desc_msg_t& desc, std::uint32_t job) {
#if VIGIL_SLURM_AT_LEAST(25, 11)
  desc.step_id.job_id = job;
#else
  desc.job_id = job;
#endif
}

const char* state_name(std::uint32_t base) {
  switch (base) {
    case JOB_PENDING: return "PENDING";
    case JOB_RUNNING: return "RUNNING";
    case JOB_SUSPENDED: return "SUSPENDED";
    case JOB_COMPLETE: return "COMPLETED";
    case JOB_CANCELLED: return "CANCELLED";
    case JOB_FAILED: return "FAILED";
    case JOB_TIMEOUT: return "TIMEOUT";
    case JOB_NODE_FAIL: return "NODE_FAIL";
    case JOB_PREEMPTED: return "PREEMPTED";
    case JOB_BOOT_FAIL: return "BOOT_FAIL";
    case JOB_DEADLINE: return "DEADLINE";
    case JOB_OOM: return "OUT_OF_MEMORY";
    default: return "UNKNOWN";
  }
}

// "node[1-3],other" -> {"node1", "node2", "node3", "other"}.
std::vector<std::string> expand_hostlist(const char* list) {
  std::vector<std::string> out;
  if (!list || !*list) return out;
  auto hl = slurm_hostlist_create(list);  // hostlist_t, or hostlist_t* since 23.11
  if (!hl) return out;
  while (char* h = slurm_hostlist_shift(hl)) {
    out.emplace_back(h);
    free(h);
  }
  slurm_hostlist_destroy(hl);
  return out;
}

}  // namespace

LibSlurmControl::LibSlurmControl() {
  static std::once_flag once;
  std::call_once(once, [] { slurm_init(nullptr); });
}

namespace {
Status set_node_state(const std::string& node, std::uint32_t state, const std::string& reason) {
  update_node_msg_t msg;
  slurm_init_update_node_msg(&msg);
  std::vector<char> names(node.begin(), node.end()), why(reason.begin(), reason.end());
  names.push_back('\0');
  why.push_back('\0');
  msg.node_names = names.data();
  msg.node_state = state;
  msg.reason = why.data();
  if (slurm_update_node(&msg) != SLURM_SUCCESS)
    return make_error(Errc::unavailable, "update node " + node + ": " + slurm_strerror(errno));
  return ok_status();
}
}  // namespace

Status LibSlurmControl::down_node(const std::string& node, const std::string& reason) {
  return set_node_state(node, NODE_STATE_DOWN, reason);
}

Status LibSlurmControl::requeue_job(std::uint32_t job) {
  if (requeue(job) != SLURM_SUCCESS) {
    const int err = errno;
    // Slurm may have requeued it already (a DOWN node's batch job, JobRequeue=1).
    if (err == ESLURM_JOB_PENDING || err == ESLURM_TRANSITION_STATE_NO_UPDATE) return ok_status();
    return make_error(Errc::unavailable, "requeue job " + std::to_string(job) + ": " + slurm_strerror(err));
  }
  return ok_status();
}

Status LibSlurmControl::exclude_nodes(std::uint32_t job, const std::string& nodes, bool release) {
  job_desc_msg_t desc;
  slurm_init_job_desc_msg(&desc);
  set_job_id(desc, job);
  std::vector<char> exc(nodes.begin(), nodes.end());
  exc.push_back('\0');
  if (!nodes.empty()) desc.exc_nodes = exc.data();
  // Slurm holds a requeued batch job back for a while (its BeginTime moves
  // into the future); recovery wants it eligible now.
  if (release) desc.begin_time = std::time(nullptr);
  else if (nodes.empty()) return ok_status();  // nothing to change yet
  if (slurm_update_job(&desc) != SLURM_SUCCESS)
    return make_error(Errc::unavailable, "exclude " + nodes + " from job " + std::to_string(job) + ": " +
                                             slurm_strerror(errno));
  return ok_status();
}

Status LibSlurmControl::drain_node(const std::string& node, const std::string& reason) {
  return set_node_state(node, NODE_STATE_DRAIN, reason);
}

Status LibSlurmControl::cancel_job(std::uint32_t job) {
  if (kill_job(job, SIGKILL) != SLURM_SUCCESS) {
    const int err = errno;
    if (err == ESLURM_ALREADY_DONE) return ok_status();
    return make_error(Errc::unavailable, "cancel job " + std::to_string(job) + ": " + slurm_strerror(err));
  }
  return ok_status();
}

Result<SlurmJobs> LibSlurmControl::load_jobs(std::time_t since) {
  job_info_msg_t* msg = nullptr;
  SlurmJobs out;
  if (slurm_load_jobs(since, &msg, SHOW_ALL) != SLURM_SUCCESS) {
    const int err = errno;
    if (err == SLURM_NO_CHANGE_IN_DATA) {
      out.changed = false;
      out.last_update = since;
      return out;
    }
    return make_error(Errc::unavailable, std::string("slurm_load_jobs: ") + slurm_strerror(err));
  }
  out.last_update = msg->last_update;
  for (std::uint32_t i = 0; i < msg->record_count; ++i) {
    const slurm_job_info_t& j = msg->job_array[i];
    SlurmJob sj;
    sj.job = j.job_id;
    sj.state = state_name(j.job_state & JOB_STATE_BASE);
    sj.uid = j.user_id;
    sj.restart = j.restart_cnt;
    sj.exit_code = static_cast<std::int32_t>(j.exit_code);
    if (j.nodes) sj.nodes = j.nodes;
    if ((j.job_state & JOB_STATE_BASE) == JOB_RUNNING) {
      sj.node_names = expand_hostlist(j.nodes);
      sj.start_time = j.start_time;
      sj.end_time = j.end_time;
      sj.preempt_time = j.preempt_time;
    }
    if (j.name) sj.name = j.name;
    if (j.account) sj.account = j.account;
    if (j.partition) sj.partition = j.partition;
    if (j.tres_req_str) sj.tres_req = j.tres_req_str;
    sj.req_nodes = j.num_nodes;
    sj.req_cpus = j.num_cpus;
    sj.req_tasks = j.num_tasks;
    sj.time_limit_min = j.time_limit;
    sj.mem_per_node_mb = j.pn_min_memory & ~MEM_PER_CPU;
    sj.submit_time = j.submit_time;
    out.jobs.push_back(std::move(sj));
  }
  slurm_free_job_info_msg(msg);
  return out;
}

Result<int> LibSlurmControl::kill_wait_s() {
  slurm_conf_t* conf = nullptr;
  if (slurm_load_ctl_conf(0, &conf) != SLURM_SUCCESS)
    return make_error(Errc::unavailable, std::string("slurm_load_ctl_conf: ") + slurm_strerror(errno));
  const int k = conf->kill_wait;
  free_conf(conf);
  return k;
}

Result<std::vector<SlurmReservation>> LibSlurmControl::load_reservations() {
  reserve_info_msg_t* msg = nullptr;
  if (slurm_load_reservations(0, &msg) != SLURM_SUCCESS)
    return make_error(Errc::unavailable, std::string("slurm_load_reservations: ") + slurm_strerror(errno));
  std::vector<SlurmReservation> out;
  for (std::uint32_t i = 0; i < msg->record_count; ++i) {
    const reserve_info_t& r = msg->reservation_array[i];
    SlurmReservation sr;
    if (r.name) sr.name = r.name;
    sr.start_time = r.start_time;
    sr.end_time = r.end_time;
    sr.maintenance = (r.flags & RESERVE_FLAG_MAINT) != 0;
    if (r.node_list && std::string(r.node_list) != "ALL") sr.node_names = expand_hostlist(r.node_list);
    out.push_back(std::move(sr));
  }
  slurm_free_reservation_info_msg(msg);
  return out;
}

}  // namespace vigil::controller
