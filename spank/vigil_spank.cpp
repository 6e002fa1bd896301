// vigil_spank.cpp — the SPANK entry points: thin, bounded, never fatal.
//
// Which process runs each hook (see slurm/spank.h):
//   sbatch/salloc (allocator)  init, init_post_opt, exit         — user, submit host
//   srun (local)               init, init_post_opt, local_user_init, exit
//   slurmd                     init, slurmd_exit                 — root; nothing to do
//   slurmstepd (remote)        init, init_post_opt (root), user_init (job user,
//                              privileges dropped), task_init_privileged (task
//                              child, root), task_init (task child, job user,
//                              just before exec), task_post_fork (slurmstepd,
//                              root, per task, after all forks), task_exit
//                              (slurmstepd, root, per task), exit (slurmstepd)
// Every hook returns 0 except an option callback refusing a bad value (that is
// how sbatch/srun reject it at submit time). No exception leaves a hook.
extern "C" {
#include <slurm/spank.h>
}

#include <pwd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "hostlist.hpp"
#include "options.hpp"
#include "reporter.hpp"
#include "transport.hpp"

// The four symbols Slurm looks up, with C linkage and default visibility. The
// SPANK_PLUGIN() macro would make them `const` (internal linkage in C++), and
// Slurm would then refuse to load the plugin (SLURM-NOTES).
extern "C" {
__attribute__((visibility("default"))) extern const char plugin_name[] = "vigil";
__attribute__((visibility("default"))) extern const char plugin_type[] = "spank";
__attribute__((visibility("default"))) extern const unsigned int plugin_version = SLURM_VERSION_NUMBER;
__attribute__((visibility("default"))) extern const unsigned int spank_plugin_version = 1;
}

namespace {

using namespace vigil;
using namespace vigil::spank;

// Per-process state. One plugin instance per process; hooks of one process run
// on one thread, so only the Reporter is shared with another thread.
struct PluginState {
  SiteConfig site;
  JobOptions opts;
  std::vector<std::string> option_errors;
  std::unique_ptr<Reporter> reporter;
  StepIdentity id;
  bool batch_step = false;
  int batch_exit_status = -1;
};
PluginState& state() {
  static PluginState s;
  return s;
}

constexpr std::uint32_t kBatchStep = 0xfffffffbu;  // SLURM_BATCH_SCRIPT

template <class F>
int guarded(const char* hook, F&& f) noexcept {
  try {
    return f();
  } catch (const std::exception& e) {
    slurm_error("vigil: %s: internal error (ignored, job unaffected): %s", hook, e.what());
  } catch (...) {
    slurm_error("vigil: %s: unknown internal error (ignored, job unaffected)", hook);
  }
  return 0;
}

// How Slurm carries option i of this plugin in a job's environment (and reads
// it back in sbatch/srun/slurmstepd: the documented env route for options).
std::string option_env_name(std::size_t i) {
  std::string name = std::string("vigil_") + option_specs()[i].name;
  for (char& c : name)
    if (c == '-') c = '_';
  return "SLURM_SPANK__SLURM_SPANK_OPTION_vigil_" + name;
}

// One option callback for all options: `val` indexes option_specs().
int option_cb(int val, const char* optarg, int /*remote*/) {
  return guarded("option", [&] {
    const auto& spec = option_specs().at(static_cast<std::size_t>(val));
    Status s = apply_option(state().opts, spec.name, optarg, state().site);
    if (!s) {
      slurm_error("%s", s.error().message.c_str());
      return -1;  // sbatch/srun refuse the submission with this message
    }
    return 0;
  });
}

// sbatch/salloc/srun, in init, before Slurm reads options from the environment.
//  * A nested sbatch/salloc inside a running job would silently copy the outer
//    job's options (they travel in its environment): drop them. srun keeps
//    them — its steps belong to the same job.
//  * Friendly environment names, like Slurm's own input variables:
//    SBATCH_VIGIL_<NAME> (sbatch), SALLOC_VIGIL_<NAME> (salloc),
//    SLURM_VIGIL_<NAME> (srun), e.g. SBATCH_VIGIL_HEARTBEAT=2. They are mapped
//    onto Slurm's option variable; command-line and #SBATCH values still win.
void prepare_option_environment(spank_context_t ctx) {
  const std::string prog = program_invocation_short_name;
  const bool allocator = ctx == S_CTX_ALLOCATOR;
  if (allocator && getenv("SLURM_JOB_ID") != nullptr)
    for (std::size_t i = 0; i < option_specs().size(); ++i) unsetenv(option_env_name(i).c_str());
  const std::string prefix = prog == "salloc" ? "SALLOC_VIGIL_" : allocator ? "SBATCH_VIGIL_" : "SLURM_VIGIL_";
  for (std::size_t i = 0; i < option_specs().size(); ++i) {
    std::string var = prefix + option_specs()[i].name;
    for (char& c : var) c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (const char* v = getenv(var.c_str())) setenv(option_env_name(i).c_str(), v, 1);
  }
}

void register_options(spank_t sp) {
  // Slurm keeps the name pointers: the strings live as long as the process.
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const OptionSpec& spec : option_specs()) v.push_back("vigil-" + std::string(spec.name));
    return v;
  }();
  for (std::size_t i = 0; i < option_specs().size(); ++i) {
    const OptionSpec& spec = option_specs()[i];
    struct spank_option o;
    std::memset(&o, 0, sizeof o);
    o.name = const_cast<char*>(names[i].c_str());
    o.arginfo = const_cast<char*>(spec.arginfo);
    o.usage = const_cast<char*>(spec.usage);
    o.has_arg = spec.arginfo ? 1 : 0;
    o.val = static_cast<int>(i);
    o.cb = option_cb;
    if (spank_option_register(sp, &o) != ESPANK_SUCCESS)
      slurm_error("vigil: could not register --%s", o.name);
  }
}

std::string read_cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "";
}

std::string job_env(spank_t sp, const char* name) {
  char buf[1024];
  if (spank_getenv(sp, name, buf, sizeof buf) == ESPANK_SUCCESS) return buf;
  return "";
}

// The Slurm node name. slurmstepd knows its index in the step (S_JOB_NODEID)
// and the job environment carries the step's node list; emulated nodes share
// one hostname, and SLURMD_NODENAME in the job env is the submitting node's.
std::string node_name(spank_t sp, bool batch) {
  std::uint32_t nodeid = 0;
  const std::string list = job_env(sp, batch ? "SLURM_JOB_NODELIST" : "SLURM_STEP_NODELIST");
  if (!list.empty() && spank_get_item(sp, S_JOB_NODEID, &nodeid) == ESPANK_SUCCESS) {
    auto names = expand_hostlist(list);
    if (names && nodeid < names->size()) return (*names)[nodeid];
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

json hardware(spank_t sp) {
  json hw = json::object();
  std::uint16_t ncpus = 0;
  if (spank_get_item(sp, S_JOB_NCPUS, &ncpus) == ESPANK_SUCCESS) hw["job_cpus"] = ncpus;
  char* cores = nullptr;
  if (spank_get_item(sp, S_STEP_ALLOC_CORES, &cores) == ESPANK_SUCCESS && cores) hw["step_cores"] = cores;
  std::uint64_t mem = 0;
  if (spank_get_item(sp, S_STEP_ALLOC_MEM, &mem) == ESPANK_SUCCESS) hw["step_mem_mb"] = mem;
  if (spank_get_item(sp, S_JOB_ALLOC_MEM, &mem) == ESPANK_SUCCESS) hw["job_mem_mb"] = mem;
  std::uint32_t n = 0;
  if (spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &n) == ESPANK_SUCCESS) hw["local_tasks"] = n;
  if (spank_get_item(sp, S_JOB_NNODES, &n) == ESPANK_SUCCESS) hw["nnodes"] = n;
  if (spank_get_item(sp, S_JOB_NODEID, &n) == ESPANK_SUCCESS) hw["nodeid"] = n;
  for (const char* gres : {"SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"}) {
    std::string v = job_env(sp, gres);
    if (!v.empty()) hw["gpus"] = v;
  }
  hw["cpu_model"] = read_cpu_model();
  hw["online_cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
  struct utsname u;
  if (uname(&u) == 0) hw["kernel"] = std::string(u.sysname) + " " + u.release;
  return hw;
}

// slurmstepd, root, a restarted job (Slurm restart count > 0): ask vigild which
// verified checkpoint to resume from and tell the tasks (VIGIL_RESTART_FROM,
// VIGIL_RESTART_STEP). Bounded (200 ms connect, 2 s answer: vigild re-digests
// the checkpoint first); vigild down or no checkpoint: nothing is set and the
// simulation starts as it would without Vigil. Steps inside the batch script
// inherit the variable from it, so only the first step of an attempt asks.
void restart_from(spank_t sp, PluginState& s, std::uint32_t job, std::uint32_t restart) {
  TransportOptions o;
  o.library = s.site.transport.empty() ? default_transport_path() : s.site.transport;
  o.endpoint = s.site.endpoint;
  o.munge_socket = s.site.munge_socket;
  o.timeout_ms = 2000;
  o.connect_timeout_ms = 200;
  auto t = make_transport(o);
  auto r = t->request({{"op", "restart_from"}, {"job", job}, {"restart", restart}});
  if (!r) return (void)slurm_info("vigil: job %u: no restart checkpoint from vigild: %s", job, r.error().what().c_str());
  if (!r->is_object() || !r->contains("path") || !(*r)["path"].is_string()) return;
  const std::string path = (*r)["path"].get<std::string>();
  spank_setenv(sp, "VIGIL_RESTART_FROM", path.c_str(), 1);
  if (r->contains("step") && (*r)["step"].is_number_integer())
    spank_setenv(sp, "VIGIL_RESTART_STEP", std::to_string((*r)["step"].get<std::int64_t>()).c_str(), 1);
  slurm_info("vigil: job %u restarts from %s", job, path.c_str());
}

// slurmstepd, root, after options: who we are, what we got; export the SDK's
// endpoint to the tasks. No thread yet: tasks are not forked.
int remote_init_post_opt(spank_t sp) {
  PluginState& s = state();
  std::uint32_t job = 0, step = 0, rc = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS || spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS)
    return 0;
  spank_get_item(sp, S_JOB_UID, &uid);
  spank_get_item(sp, S_JOB_GID, &gid);
  if (spank_get_item(sp, S_SLURM_RESTART_COUNT, &rc) != ESPANK_SUCCESS) rc = 0;
  // Slurm 22.05's slurmstepd answers 0 after a requeue; the job environment has
  // the real count (slurmctld sets SLURM_RESTART_COUNT for requeued jobs).
  if (rc == 0) {
    const std::string env_rc = job_env(sp, "SLURM_RESTART_COUNT");
    if (!env_rc.empty() && env_rc.find_first_not_of("0123456789") == std::string::npos && env_rc.size() < 10)
      rc = static_cast<std::uint32_t>(std::stoul(env_rc));
  }
  s.batch_step = step == kBatchStep;
  s.id = {job, step, rc, node_name(sp, s.batch_step)};
  s.reporter = std::make_unique<Reporter>(s.site, s.opts, s.id);

  std::string user;
  struct passwd pw, *res = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res) user = pw.pw_name;
  json opts = {{"heartbeat_s", s.opts.effective_heartbeat(s.site)},
               {"checkpoint_s", s.opts.checkpoint_s},
               {"checkpoint_signal", s.opts.checkpoint_signal},
               {"results", s.opts.results},
               {"protect", s.opts.protect}};
  if (s.opts.retries >= 0) opts["retries"] = s.opts.retries;
  if (s.opts.keep_checkpoints >= 0) opts["keep"] = s.opts.keep_checkpoints;
  if (!s.opts.results_dir.empty()) opts["results_dir"] = s.opts.results_dir;
  if (!s.opts.rules.empty()) opts["rules"] = s.opts.rules;
  json attrs = {{"uid", uid}, {"gid", gid}, {"user", user}, {"options", opts}, {"hardware", hardware(sp)}};
  if (!s.opts.label.empty()) attrs["label"] = s.opts.label;
  s.reporter->emit(s.batch_step ? EventType::job_start : EventType::step_start, -1, std::move(attrs));

  // What the SDK inside the tasks needs to reach vigild (it authenticates as the
  // job's user with its own MUNGE credential; ADR 0005).
  spank_setenv(sp, "VIGIL_ENDPOINT", s.site.endpoint.c_str(), 1);
  if (!s.site.munge_socket.empty()) spank_setenv(sp, "VIGIL_MUNGE_SOCKET", s.site.munge_socket.c_str(), 1);
  spank_setenv(sp, "VIGIL_JOB_ID", std::to_string(job).c_str(), 1);
  spank_setenv(sp, "VIGIL_RESTART_COUNT", std::to_string(rc).c_str(), 1);
  // The signal this job's checkpoint requests arrive as (--vigil-checkpoint-signal),
  // as a number: vigil_install_checkpoint_handler() listens for it (SDK API v3).
  spank_setenv(sp, "VIGIL_CHECKPOINT_SIGNAL", std::to_string(s.opts.checkpoint_signal).c_str(), 1);
  if (rc > 0 && job_env(sp, "VIGIL_RESTART_FROM").empty()) restart_from(sp, s, job, rc);
  return 0;
}

}  // namespace

extern "C" {

// All contexts. Registers options; reads plugstack arguments (bad ones are
// logged, never fatal).
__attribute__((visibility("default"))) int slurm_spank_init(spank_t sp, int ac, char** av) {
  return guarded("init", [&] {
    std::vector<std::string> args(av, av + ac), warnings;
    state().site = parse_site_args(args, warnings);
    if (spank_context() != S_CTX_SLURMD)  // slurmd proper has no job options
      for (const auto& w : warnings) slurm_error("vigil: %s", w.c_str());
    const spank_context_t ctx = spank_context();
    if (ctx == S_CTX_ALLOCATOR || ctx == S_CTX_LOCAL) prepare_option_environment(ctx);
    register_options(sp);
    return 0;
  });
}

__attribute__((visibility("default"))) int slurm_spank_init_post_opt(spank_t sp, int, char**) {
  return guarded("init_post_opt", [&] {
    if (spank_context() == S_CTX_REMOTE) return remote_init_post_opt(sp);
    return 0;
  });
}

// slurmstepd, root, once per task after every task was forked: the safe moment
// to start our thread.
__attribute__((visibility("default"))) int slurm_spank_task_post_fork(spank_t sp, int, char**) {
  return guarded("task_post_fork", [&] {
    PluginState& s = state();
    if (!s.reporter) return 0;
    pid_t pid = 0;
    std::uint32_t gtid = 0;
    spank_get_item(sp, S_TASK_PID, &pid);
    spank_get_item(sp, S_TASK_GLOBAL_ID, &gtid);
    s.reporter->add_task(pid, static_cast<std::int32_t>(gtid));
    s.reporter->emit(EventType::task_start, static_cast<std::int32_t>(gtid), {{"pid", pid}});
    s.reporter->start();
    return 0;
  });
}

// slurmstepd, root, per task: the only hook with a valid exit status.
__attribute__((visibility("default"))) int slurm_spank_task_exit(spank_t sp, int, char**) {
  return guarded("task_exit", [&] {
    PluginState& s = state();
    if (!s.reporter) return 0;
    int status = 0;
    pid_t pid = 0;
    std::uint32_t gtid = 0;
    spank_get_item(sp, S_TASK_EXIT_STATUS, &status);
    spank_get_item(sp, S_TASK_PID, &pid);
    spank_get_item(sp, S_TASK_GLOBAL_ID, &gtid);
    s.reporter->task_exited(pid);
    json a = {{"pid", pid}, {"status", status}};
    if (WIFEXITED(status)) a["exit_code"] = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) a["signal"] = WTERMSIG(status);
    if (s.batch_step) s.batch_exit_status = status;
    s.reporter->emit(EventType::task_exit, static_cast<std::int32_t>(gtid), std::move(a));
    return 0;
  });
}

// Every context; in slurmstepd: end of the step on this node. Bounded: the
// reporter makes at most one last attempt, then spools.
__attribute__((visibility("default"))) int slurm_spank_exit(spank_t, int, char**) {
  return guarded("exit", [&] {
    PluginState& s = state();
    if (spank_context() != S_CTX_REMOTE || !s.reporter) return 0;
    if (s.batch_step) {
      json a = {{"status", s.batch_exit_status}};
      if (s.batch_exit_status >= 0 && WIFEXITED(s.batch_exit_status)) a["exit_code"] = WEXITSTATUS(s.batch_exit_status);
      if (s.batch_exit_status >= 0 && WIFSIGNALED(s.batch_exit_status)) a["signal"] = WTERMSIG(s.batch_exit_status);
      s.reporter->emit(EventType::job_end, -1, std::move(a));
    } else {
      s.reporter->emit(EventType::step_end, -1, json::object());
    }
    s.reporter->start();  // a step whose tasks never forked still reports
    s.reporter->stop();
    s.reporter.reset();
    return 0;
  });
}

}  // extern "C"
