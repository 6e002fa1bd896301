// slurm_api.cpp — libslurm calls (see slurm_api.hpp).
#include "slurm_api.hpp"

extern "C" {
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
}

#include <mutex>
#include <vector>

namespace vigil::controller {

LibSlurmControl::LibSlurmControl() {
  static std::once_flag once;
  std::call_once(once, [] { slurm_init(nullptr); });
}

Status LibSlurmControl::drain_node(const std::string& node, const std::string& reason) {
  update_node_msg_t msg;
  slurm_init_update_node_msg(&msg);
  std::vector<char> names(node.begin(), node.end()), why(reason.begin(), reason.end());
  names.push_back('\0');
  why.push_back('\0');
  msg.node_names = names.data();
  msg.node_state = NODE_STATE_DRAIN;
  msg.reason = why.data();
  if (slurm_update_node(&msg) != SLURM_SUCCESS)
    return make_error(Errc::unavailable, "drain " + node + ": " + slurm_strerror(slurm_get_errno()));
  return ok_status();
}

}  // namespace vigil::controller
