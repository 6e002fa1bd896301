// reporter.cpp — see reporter.hpp.
#include "reporter.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <utility>
#include <fstream>

#include "spool.hpp"
#include "transport.hpp"

namespace vigil::spank {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// utime+stime (clock ticks) and RSS (pages) of one process, from /proc/PID/stat.
bool read_stat(pid_t pid, long long& ticks, long long& rss_pages) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::ifstream in(path);
  std::string s;
  if (!std::getline(in, s)) return false;
  auto close = s.rfind(')');  // comm may contain spaces
  if (close == std::string::npos) return false;
  std::vector<std::string> f;
  std::size_t p = close + 2;
  while (p < s.size()) {
    auto q = s.find(' ', p);
    f.push_back(s.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  // fields after comm start at "state" (field 3): utime=14, stime=15, rss=24
  if (f.size() < 22) return false;
  ticks = std::atoll(f[11].c_str()) + std::atoll(f[12].c_str());
  rss_pages = std::atoll(f[21].c_str());
  return true;
}

}  // namespace

// A node-wide note that vigild was unreachable: `<spool>/<node>/vigild-down`,
// its mtime the moment of the failed attempt. Steps starting within
// kDownNoteTtl go straight to the spool instead of each paying a connect
// timeout; after it, one step probes again.
constexpr auto kDownNoteTtl = std::chrono::seconds(10);

// Whether this node's vigil-relay runs (ADR 0014): it holds an exclusive flock
// on `<spool>/<node>/relay.lock` for its whole life. A shared lock we can take
// means nobody holds it. Three syscalls, checked at every send.
bool relay_alive(const std::string& lock_path) {
  const int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // also drops our shared lock, if we got it
  return held;
}

struct Reporter::Link {
  std::unique_ptr<Transport> client;
  Spool spool;
  std::string down_note;
  std::string relay_lock;
  bool reachable = true;        // last exchange with vigild worked (or was never tried)
  Clock::time_point retry_at{};
  int backoff_ms = 500;
  Link(const TransportOptions& o, const std::string& dir, std::string name, std::size_t max)
      : client(make_transport(o)),
        spool(dir, std::move(name), max),
        down_note(dir + "/vigild-down"),
        relay_lock(dir + "/relay.lock") {
    struct stat st;
    if (::stat(down_note.c_str(), &st) == 0 &&
        std::chrono::system_clock::now() - std::chrono::system_clock::from_time_t(st.st_mtime) < kDownNoteTtl) {
      reachable = false;
      retry_at = Clock::now() + kDownNoteTtl;
    }
  }
  void note(bool ok) {
    if (ok == reachable) return;
    reachable = ok;
    if (ok) {
      ::unlink(down_note.c_str());
    } else {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(down_note).parent_path(), ec);
      int fd = ::open(down_note.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) ::close(fd);
    }
  }
};

Reporter::Reporter(SiteConfig site, JobOptions opts, StepIdentity id)
    : site_(std::move(site)), opts_(std::move(opts)), id_(std::move(id)) {}

Reporter::~Reporter() { stop(); }

void Reporter::emit(EventType type, std::int32_t task, json attrs) {
  Event e;
  e.id = new_event_id();
  e.type = type;
  e.ts_ns = now_ns();
  e.job = id_.job;
  e.step = id_.step;
  e.task = task;
  e.restart = id_.restart;
  e.node = id_.node;
  e.attrs = std::move(attrs);
  {
    std::lock_guard<std::mutex> g(mu_);
    // 100 000 queued events (~15 MB) means the thread is wedged: shed load
    // rather than grow slurmstepd without bound.
    if (queue_.size() >= 100000) return;
    queue_.push_back(std::move(e));
  }
  cv_.notify_one();
}

void Reporter::add_task(pid_t pid, std::int32_t task) {
  std::lock_guard<std::mutex> g(mu_);
  tasks_[pid] = task;
}

void Reporter::task_exited(pid_t pid) {
  std::lock_guard<std::mutex> g(mu_);
  tasks_.erase(pid);
}

void Reporter::start() {
  if (thread_.joinable()) return;
  TransportOptions co;
  co.library = site_.transport.empty() ? default_transport_path() : site_.transport;
  co.endpoint = site_.endpoint;
  co.munge_socket = site_.munge_socket;
  co.timeout_ms = std::max(100, site_.exit_flush_ms);  // bounds how long the exit hook can wait
  co.connect_timeout_ms = 100;
  std::string dir = site_.spool_dir + "/" + (id_.node.empty() ? "node" : id_.node);
  std::string name = std::to_string(id_.job) + "." + std::to_string(id_.step) + "." + std::to_string(id_.restart) +
                     "." + std::to_string(getpid()) + ".spool";
  link_ = std::make_unique<Link>(co, dir, name, site_.spool_max_bytes);
  // Block every signal in the thread so signals meant for slurmstepd (or our
  // own checkpoint signal) are never delivered to it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  thread_ = std::thread([this] { run(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void Reporter::stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

json Reporter::sample_tasks() {
  std::map<pid_t, std::int32_t> tasks;
  {
    std::lock_guard<std::mutex> g(mu_);
    tasks = tasks_;
  }
  long long ticks = 0, rss = 0;
  for (auto& [pid, t] : tasks) {
    long long tk = 0, rs = 0;
    if (read_stat(pid, tk, rs)) {
      ticks += tk;
      rss += rs;
    }
  }
  static const long hz = sysconf(_SC_CLK_TCK);
  static const long page = sysconf(_SC_PAGESIZE);
  return {{"tasks", tasks.size()},
          {"cpu_s", static_cast<double>(ticks) / static_cast<double>(hz)},
          {"rss_bytes", rss * page},
          {"interval_s", opts_.effective_heartbeat(site_)}};
}

void Reporter::deliver_checkpoint_signal(const char* reason, std::uint64_t command_id) {
  std::map<pid_t, std::int32_t> tasks;
  {
    std::lock_guard<std::mutex> g(mu_);
    tasks = tasks_;
  }
  int delivered = 0;
  for (auto& [pid, t] : tasks) delivered += ::kill(pid, opts_.checkpoint_signal) == 0;
  json a = {{"signal", opts_.checkpoint_signal}, {"reason", reason}, {"delivered", delivered}, {"tasks", tasks.size()}};
  if (command_id != 0) a["command"] = command_id;
  emit(EventType::checkpoint_signal, -1, std::move(a));
}

// Sends what is queued. Order is preserved: while anything is spooled, new
// events go behind it into the spool until a replay empties it.
void Reporter::drain(bool final_pass) {
  std::vector<Event> batch;
  {
    std::lock_guard<std::mutex> g(mu_);
    batch.swap(queue_);
  }
  Link& l = *link_;
  // With a relay on this node our events only go into our spool file: the
  // relay carries them (and runs vigild's commands). No transport in slurmstepd.
  if (relay_alive(l.relay_lock)) {
    if (!batch.empty()) (void)l.spool.append(batch);
    return;
  }
  const auto now = Clock::now();
  auto send = [&](const std::vector<Event>& evs) {
    auto r = l.client->send(evs);
    // rate_limited: vigild is there, just busy: back off without telling the
    // whole node that it is down.
    l.note(r.ok() || r.error().code == Errc::rate_limited);
    if (r.ok()) commands_.insert(commands_.end(), r->commands.begin(), r->commands.end());
    if (!r.ok()) {
      l.retry_at = Clock::now() + std::chrono::milliseconds(l.backoff_ms);
      l.backoff_ms = std::min(l.backoff_ms * 2, 5000);  // vigild's restart grace is 10 s
    } else {
      l.backoff_ms = 500;
    }
    return r.ok();
  };
  const bool may_try = !final_pass ? now >= l.retry_at : l.reachable;
  if (!l.spool.empty() && may_try) l.spool.replay(send);
  if (batch.empty()) return;
  if (l.spool.empty() && may_try && send(batch)) return;
  (void)l.spool.append(batch);  // failure is counted in the spool; the job goes on
}

void Reporter::run() {
  const auto hb = std::chrono::seconds(opts_.effective_heartbeat(site_));
  // The first heartbeat one interval in: step_start already said "alive", and by
  // then every task of the step is registered (the thread starts with the first).
  auto next_hb = Clock::now() + hb;
  const bool ckpt = opts_.checkpoint_s > 0 && id_.step != 0xfffffffbu;  // not the batch shell
  auto next_ckpt = Clock::now() + std::chrono::seconds(opts_.checkpoint_s);
  // Leftovers of earlier steps on this node: replay them too (the relay's job
  // when there is one).
  if (link_->reachable && !relay_alive(link_->relay_lock))
    link_->spool.replay([&](const std::vector<Event>& evs) {
      const bool ok = link_->client->send(evs).ok();
      link_->note(ok);
      return ok;
    });
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      auto wake = ckpt ? std::min(next_hb, next_ckpt) : next_hb;
      cv_.wait_until(lk, wake, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
    }
    const auto now = Clock::now();
    if (now >= next_hb) {
      emit(EventType::heartbeat, -1, sample_tasks());
      while (next_hb <= now) next_hb += hb;
    }
    if (ckpt && now >= next_ckpt) {
      deliver_checkpoint_signal("cadence");
      next_ckpt = now + std::chrono::seconds(opts_.checkpoint_s);
    }
    drain(false);
    // Commands vigild sent back with the ACK (user request, stop-and-gather...).
    for (const Command& c : std::exchange(commands_, {}))
      if (c.kind == "checkpoint") deliver_checkpoint_signal(c.reason.c_str(), c.id);
  }
  drain(true);
}

}  // namespace vigil::spank
