// hostlist.hpp — expand Slurm node lists ("n[1-3,7],gpu[01-02]") into names.
//
// slurmstepd gives the plugin its node index (S_JOB_NODEID) and the step's node
// list (environment), not its node name; on emulated clusters every node shares
// one hostname, so the name must come from the list. libslurm's hostlist is not
// usable here (loading libslurm.so into slurmstepd clashes with its own copy).
#pragma once

#include <string>
#include <vector>

#include "vigil/result.hpp"

namespace vigil::spank {

// At most `limit` names; malformed input is an error, never a crash.
Result<std::vector<std::string>> expand_hostlist(const std::string& list, std::size_t limit = 100000);

}  // namespace vigil::spank
