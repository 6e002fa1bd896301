// vigil-relay — one per compute node, root: carries the plugin's events from
// the node-local spool to vigild over one long-lived session (ADR 0014).
//
//   vigil-relay NODE [plugstack arguments...]    e.g.
//   vigil-relay n1 endpoint=tcp://head:7810 spool_dir=/var/spool/vigil
//
// While it runs it holds an exclusive flock on <spool_dir>/<NODE>/relay.lock;
// the plugin sees that lock and then only appends its events to its step's
// spool file (a file append instead of loading the transport, a MUNGE
// credential and two round trips per step). The relay, woken by inotify, sends
// each file's new records in order, remembers how far it got, and deletes a
// file once its step has let go of it (the step's flock is gone) and all of it
// was acknowledged. vigild down: it retries with backoff; nothing is lost.
// Commands that vigild returns in the ACK of a file's batch (checkpoint
// requests) concern that file's step: the relay signals the step's tasks
// itself (it learnt their pids from task_start) and reports the delivery.
// Relay gone: plugins notice the lock is free and talk to vigild themselves.
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "options.hpp"
#include "spool.hpp"
#include "vigil/client.hpp"

namespace {

using namespace vigil;
using namespace vigil::spank;

std::atomic<bool> g_stop{false};
constexpr int kCoalesceMs = 50;  // how long a wake-up waits for the rest of a burst of writes
extern "C" void on_stop(int) { g_stop = true; }

void say(const char* level, const std::string& m) { std::fprintf(stderr, "vigil-relay: %s: %s\n", level, m.c_str()); }

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the relay knows about one step from the events it carried.
struct StepInfo {
  std::map<pid_t, std::int32_t> tasks;  // live tasks: pid -> global task id
  int signal = SIGUSR1;                 // the job's checkpoint signal
};

class Relay {
 public:
  Relay(std::string dir, const SiteConfig& site) : dir_(std::move(dir)) {
    ClientOptions o;
    o.endpoint = site.endpoint;
    o.munge_socket = site.munge_socket;
    o.role = "plugin";  // root, carrying plugin events (ADR 0005)
    o.timeout_ms = 2000;
    o.connect_timeout_ms = 500;
    client_ = std::make_unique<Client>(std::move(o));
  }

  // One pass over the spool files, oldest first. False when vigild failed us.
  bool pass() {
    for (const std::string& f : spool_files_oldest_first(dir_))
      if (!carry(f)) return false;
    // Forget what belongs to files that are gone.
    std::erase_if(offsets_, [](const auto& kv) { return !std::filesystem::exists(kv.first); });
    return true;
  }

 private:
  bool carry(const std::string& f) {
    // Our lock succeeds only once the step has let go of its file (it ended,
    // or died): then what we read now is all there will be.
    const int lk = spool_lock(f);
    if (lk >= 0 && spool_just_created(f)) {  // its step is about to lock and fill it
      spool_unlock(lk);
      return true;
    }
    std::size_t& off = offsets_[f];
    bool ok = true;
    for (;;) {
      std::size_t next = off;
      auto evs = Spool::read_from(f, off, 500, next);
      if (!evs) {
        say("warning", evs.error().what() + " (skipped)");
        next = SIZE_MAX;  // unreadable: nothing more will come of it
        break;
      }
      if (evs->empty()) break;
      observe(*evs);
      auto ack = client_->send_batch(*evs);
      if (!ack) {
        ok = false;
        if (ack.error().code != Errc::rate_limited) say("info", "vigild: " + ack.error().what());
        break;
      }
      off = next;
      for (const Command& c : ack->commands) run_command(c, evs->front());
    }
    if (ok && lk >= 0) {
      std::remove(f.c_str());
      offsets_.erase(f);
    }
    if (lk >= 0) spool_unlock(lk);
    return ok;
  }

  // Task pids and the checkpoint signal of each step, from the events carried.
  void observe(const std::vector<Event>& evs) {
    for (const Event& e : evs) {
      const auto key = std::make_pair(e.job, e.step);
      switch (e.type) {
        case EventType::job_start:
        case EventType::step_start:
          if (e.attrs.contains("options") && e.attrs["options"].contains("checkpoint_signal") &&
              e.attrs["options"]["checkpoint_signal"].is_number_integer())
            steps_[key].signal = e.attrs["options"]["checkpoint_signal"].get<int>();
          break;
        case EventType::task_start:
          if (e.attrs.contains("pid") && e.attrs["pid"].is_number_integer())
            steps_[key].tasks[e.attrs["pid"].get<pid_t>()] = e.task;
          break;
        case EventType::task_exit:
          if (e.attrs.contains("pid") && e.attrs["pid"].is_number_integer())
            steps_[key].tasks.erase(e.attrs["pid"].get<pid_t>());
          break;
        case EventType::step_end:
        case EventType::job_end:
          steps_.erase(key);
          break;
        default:
          break;
      }
    }
  }

  // A command in the ACK of a file's batch is for that file's step.
  void run_command(const Command& c, const Event& of) {
    if (c.kind != "checkpoint") return;
    auto it = steps_.find({of.job, of.step});
    if (it == steps_.end()) return;
    int delivered = 0;
    for (const auto& [pid, task] : it->second.tasks) delivered += ::kill(pid, it->second.signal) == 0;
    Event e;
    e.id = new_event_id();
    e.type = EventType::checkpoint_signal;
    e.ts_ns = now_ns();
    e.job = of.job;
    e.step = of.step;
    e.restart = of.restart;
    e.node = of.node;
    e.attrs = {{"signal", it->second.signal}, {"reason", c.reason},        {"delivered", delivered},
               {"tasks", it->second.tasks.size()}, {"command", c.id}, {"by", "relay"}};
    if (auto r = client_->send_batch({e}); !r) say("warning", "delivery report not sent: " + r.error().what());
  }

  std::string dir_;
  std::unique_ptr<Client> client_;
  std::map<std::string, std::size_t> offsets_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, StepInfo> steps_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr, "usage: vigil-relay NODE [endpoint=... munge_socket=... spool_dir=...]\n");
    return 2;
  }
  const std::string node = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc), warnings;
  const SiteConfig site = parse_site_args(args, warnings);
  for (const auto& w : warnings) say("warning", w);
  const std::string dir = site.spool_dir + "/" + node;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ::chmod(dir.c_str(), 0700);

  // One relay per node directory: the lock is also how plugins know we are here.
  const std::string lock_path = dir + "/relay.lock";
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || ::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    say("error", "another relay runs for " + dir + " (or " + lock_path + " cannot be locked)");
    return 1;
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock, 0) != 0 || ::write(lock, pid.data(), pid.size()) < 0) say("warning", "cannot write pid");

  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (in < 0 || inotify_add_watch(in, dir.c_str(), IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) < 0)
    say("warning", "inotify unavailable: polling every 200 ms");
  say("info", "carrying " + dir + " to " + site.endpoint);

  Relay relay(dir, site);
  int backoff_ms = 0;
  while (!g_stop) {
    const bool ok = relay.pass();
    backoff_ms = ok ? 0 : std::min(std::max(250, backoff_ms * 2), 5000);
    // Wait for a change (or the backoff, or a periodic rescan).
    pollfd p{in, POLLIN, 0};
    const int wait = ok ? (in >= 0 ? 1000 : 200) : backoff_ms;
    if (::poll(&p, in >= 0 ? 1 : 0, wait) > 0) {
      // Let the burst that woke us finish (a step starting writes several
      // records within milliseconds): one batch instead of several, and our
      // work stays out of the way of the step launch itself.
      ::poll(nullptr, 0, ok ? kCoalesceMs : backoff_ms);  // vigild down: a write does not bring it back
      char buf[8192];
      while (::read(in, buf, sizeof buf) > 0) {
      }
    }
  }
  say("info", "stopped");
  ::unlink(lock_path.c_str());
  return 0;
}
