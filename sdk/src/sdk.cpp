// sdk.cpp — the C API of vigil/sdk.h over the shared session client.
#include "vigil/sdk.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <atomic>
#include <thread>

#include "vigil/client.hpp"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint32_t env_u32(const char* name, std::uint32_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  unsigned long n = std::strtoul(v, &end, 10);
  return (end && *end == '\0' && n <= 0xffffffffu) ? static_cast<std::uint32_t>(n) : fallback;
}

// vigild rejects results for a job whose start event it has not committed yet;
// that event comes from the node (through its relay, up to ~100 ms after the
// tasks start), so such values are retried for a while, at most every 50 ms.
constexpr auto kUnknownJobWindow = std::chrono::seconds(5);
constexpr auto kUnknownJobPause = std::chrono::milliseconds(50);

// A scalar as the simulation handed it over: turned into an Event (id, CBOR-ready
// attrs) by the sender thread, so the simulation's call costs a clock read, a
// few short-string copies and a queue push.
struct Scalar {
  std::string name, stage, units;
  double value = 0, sim_time = 0;
  std::int64_t step = 0;
};

struct Pending {
  Event event;
  std::optional<Scalar> scalar;  // set until the sender thread has built `event`
  std::size_t bytes = 0;         // array payload counted against the memory bound
  std::optional<std::chrono::steady_clock::time_point> retry_until;  // set at the first "unknown job"
};

// Wakes the sender thread early once this many values wait (else every 100 ms).
constexpr std::size_t kWakeAt = 512;

class Sdk {
 public:
  bool init() {
    if (const int st = state_.load(std::memory_order_acquire); st != 0) return st == 1;
    std::lock_guard<std::mutex> g(mu_);
    if (started_) return active_;
    started_ = true;
    const bool on = start_locked();
    state_.store(on ? 1 : 2, std::memory_order_release);
    return on;
  }

  int emit_scalar(Scalar v) {
    if (!init()) return 0;
    Pending p;
    p.event.type = EventType::result;
    p.event.ts_ns = now_ns();
    p.scalar = std::move(v);
    return enqueue(std::move(p));
  }

 private:
  bool start_locked() {
    const char* endpoint = std::getenv("VIGIL_ENDPOINT");
    job_ = env_u32("VIGIL_JOB_ID", 0);
    if (!endpoint || !*endpoint || job_ == 0) return active_ = false;  // not a Vigil job: no-op
    opts_.endpoint = endpoint;
    if (const char* m = std::getenv("VIGIL_MUNGE_SOCKET")) opts_.munge_socket = m;
    opts_.role = "sdk";
    opts_.timeout_ms = 1000;
    step_ = env_u32("SLURM_STEP_ID", env_u32("SLURM_STEPID", kNoStep));
    task_ = static_cast<std::int32_t>(env_u32("SLURM_PROCID", 0));
    restart_ = env_u32("VIGIL_RESTART_COUNT", 0);
    if (const char* n = std::getenv("SLURMD_NODENAME")) node_ = n;
    if (node_.size() > kMaxNodeName) node_.resize(kMaxNodeName);
    max_queue_ = env_u32("VIGIL_SDK_QUEUE", 100000);
    max_bytes_ = static_cast<std::size_t>(env_u32("VIGIL_SDK_QUEUE_MB", 64)) << 20;
    // Our thread must not take the simulation's signals (e.g. its checkpoint signal).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_ = std::thread([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return active_ = true;
  }

  // Identity fields every event of this task carries.
  void stamp(Event& e) const {
    e.job = job_;
    e.step = step_;
    e.task = task_;
    e.restart = restart_;
    e.node = node_;
  }

  int enqueue(Pending p) {
    bool wake = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (queue_.size() >= max_queue_ || queued_bytes_ + p.bytes > max_bytes_) {
        dropped_++;
        return 0;
      }
      queued_bytes_ += p.bytes;
      queue_.push_back(std::move(p));
      wake = queue_.size() == kWakeAt;
    }
    if (wake) cv_.notify_one();
    return 0;
  }

  // Runs on the sender thread: the event a queued scalar becomes (once; a
  // resend reuses it, id included).
  void build(Pending& p) const {
    if (!p.scalar) return;
    Scalar& v = *p.scalar;
    p.event.id = new_event_id();
    stamp(p.event);
    p.event.attrs = {{"kind", "scalar"}, {"name", std::move(v.name)}, {"stage", std::move(v.stage)},
                     {"step", v.step},   {"sim_t", v.sim_time},       {"v", v.value}};
    if (!v.units.empty()) p.event.attrs["units"] = std::move(v.units);
    p.scalar.reset();
  }

 public:
  int emit(EventType type, json attrs, std::size_t bytes = 0) {
    if (!init()) return 0;
    Pending p;
    p.event.id = new_event_id();
    p.event.type = type;
    p.event.ts_ns = now_ns();
    stamp(p.event);
    p.event.attrs = std::move(attrs);
    p.bytes = bytes;
    return enqueue(std::move(p));
  }

  void finalize(int timeout_ms) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!active_ || stopping_) return;
      stopping_ = true;
      flush_deadline_ = Clock::now() + std::chrono::milliseconds(timeout_ms);
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  bool active() {
    std::lock_guard<std::mutex> g(mu_);
    return active_;
  }
  std::uint64_t dropped() {
    std::lock_guard<std::mutex> g(mu_);
    return dropped_;
  }

  ~Sdk() { finalize(2000); }

 private:
  void run() {
    Client client(opts_);
    auto backoff = std::chrono::milliseconds(200);
    for (;;) {
      std::vector<Pending> batch;
      bool stopping;
      {
        std::unique_lock<std::mutex> lk(mu_);
        // Batch for up to 100 ms: a value is visible to readers well within a second.
        cv_.wait_for(lk, std::chrono::milliseconds(100), [&] { return stopping_ || queue_.size() >= kWakeAt; });
        stopping = stopping_;
        const std::size_t n = std::min<std::size_t>(queue_.size(), 2000);
        // A batch stays well under the 1 MiB frame limit even with arrays.
        std::size_t batch_bytes = 0;
        for (std::size_t i = 0; i < n && (batch.empty() || batch_bytes + queue_.front().bytes <= (600u << 10)); ++i) {
          batch_bytes += queue_.front().bytes;
          queued_bytes_ -= queue_.front().bytes;
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        if (stopping && batch.empty()) return;
        if (stopping && Clock::now() > flush_deadline_) {
          dropped_ += batch.size() + queue_.size();
          return;
        }
      }
      if (batch.empty()) continue;
      std::vector<Event> events;
      for (auto& p : batch) {
        build(p);
        events.push_back(p.event);
      }
      auto ack = client.send_batch(events);
      std::unique_lock<std::mutex> lk(mu_);
      if (!ack) {
        // vigild unreachable: put them back in front, in order, and back off.
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          queued_bytes_ += it->bytes;
          queue_.push_front(std::move(*it));
        }
        while (queue_.size() > max_queue_ || queued_bytes_ > max_bytes_) {
          queued_bytes_ -= queue_.back().bytes;
          queue_.pop_back();
          dropped_++;
        }
        lk.unlock();
        std::this_thread::sleep_for(stopping ? std::chrono::milliseconds(50) : backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
      }
      backoff = std::chrono::milliseconds(200);
      bool wait_for_job = false;
      const auto now = Clock::now();
      for (const auto& [index, reason] : ack->rejected) {
        if (index >= batch.size()) continue;
        Pending& p = batch[index];
        if (reason.find("unknown to vigild") != std::string::npos) {
          if (!p.retry_until) p.retry_until = now + kUnknownJobWindow;
          if (now < *p.retry_until) {
            queued_bytes_ += p.bytes;
            queue_.push_back(std::move(p));
            wait_for_job = true;
            continue;
          }
        }
        dropped_++;
      }
      if (wait_for_job) {  // not a hot loop while stopping (finalize does not wait 100 ms)
        lk.unlock();
        std::this_thread::sleep_for(kUnknownJobPause);
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::size_t max_queue_ = 100000;
  std::size_t max_bytes_ = 64u << 20, queued_bytes_ = 0;
  bool started_ = false, active_ = false, stopping_ = false;
  std::atomic<int> state_{0};  // 0: not started, 1: active, 2: not a Vigil job
  Clock::time_point flush_deadline_{};
  std::uint64_t dropped_ = 0;
  ClientOptions opts_;
  std::uint32_t job_ = 0, step_ = kNoStep, restart_ = 0;
  std::int32_t task_ = 0;
  std::string node_;
  std::thread thread_;
};

Sdk& sdk() {
  static Sdk s;
  return s;
}

// Names become HDF5 path components: keep them short and unambiguous.
bool valid_name(const char* name) {
  if (!name || !*name) return false;
  std::size_t n = 0;
  for (const char* c = name; *c; ++c, ++n) {
    const bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                    *c == '-' || *c == '.';
    if (!ok || n >= VIGIL_MAX_NAME) return false;
  }
  return !(name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')));
}

std::mutex stage_mu;
std::string current_stage = "main";

std::string stage() {
  std::lock_guard<std::mutex> g(stage_mu);
  return current_stage;
}

json value_attrs(const char* kind, const char* name, std::int64_t step, double sim_time, const char* units) {
  json a = {{"kind", kind}, {"name", name}, {"stage", stage()}, {"step", step}, {"sim_t", sim_time}};
  if (units && *units) a["units"] = std::string(units).substr(0, 32);
  return a;
}

bool valid_path(const char* path) { return path && *path && std::strlen(path) <= 4096; }

// strerror_r is the GNU variant (returns the text) under _GNU_SOURCE, which g++
// defines, and the XSI one (fills buf, returns 0) elsewhere: take either.
[[maybe_unused]] const char* strerror_text(int rc, const char* buf) { return rc == 0 ? buf : "unknown error"; }
[[maybe_unused]] const char* strerror_text(const char* text, const char*) { return text; }

std::string error_text(int error_number) {
  if (error_number == 0) return "unknown error";
  char buf[256] = "";
  return strerror_text(strerror_r(error_number, buf, sizeof buf), buf);
}

// Checkpoint requests (API v3). The handler only stores to a lock-free atomic,
// which is async-signal-safe; vigil_should_checkpoint exchanges it back to 0.
std::atomic<int> checkpoint_requested{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

void on_checkpoint_signal(int) { checkpoint_requested.store(1, std::memory_order_relaxed); }

// VIGIL_CHECKPOINT_SIGNAL as the plugin writes it: plain decimal digits naming a
// signal a process can catch. Anything else (unset, "USR2", " 12", "9") means
// the default, so a bad value never leaves the simulation deaf to SIGUSR1.
int checkpoint_signal_from_env() {
  const char* v = std::getenv("VIGIL_CHECKPOINT_SIGNAL");
  if (!v || !*v) return SIGUSR1;
  int n = 0;
  for (const char* c = v; *c; ++c) {
    if (*c < '0' || *c > '9' || n >= NSIG) return SIGUSR1;  // n >= NSIG: stop before it can overflow
    n = n * 10 + (*c - '0');
  }
  if (n < 1 || n >= NSIG || n == SIGKILL || n == SIGSTOP) return SIGUSR1;
  return n;
}

}  // namespace

extern "C" {

VIGIL_SDK_EXPORT int vigil_sdk_init(void) {
  try {
    sdk().init();
  } catch (...) {
  }
  return 0;
}

VIGIL_SDK_EXPORT int vigil_sdk_api_version(void) { return VIGIL_SDK_API_VERSION; }

VIGIL_SDK_EXPORT int vigil_set_stage(const char* name) {
  if (!valid_name(name)) return VIGIL_EINVAL;
  try {
    std::lock_guard<std::mutex> g(stage_mu);
    current_stage = name;
    return 0;
  } catch (...) {
    return VIGIL_EINTERNAL;
  }
}

VIGIL_SDK_EXPORT int vigil_emit_scalar(const char* name, double value, int64_t step, double sim_time, const char* units) {
  if (!valid_name(name)) return VIGIL_EINVAL;
  try {
    if (!sdk().init()) return 0;  // cheap no-op outside a job
    Scalar v;
    v.name = name;
    v.stage = stage();
    if (units && *units) v.units = std::string(units).substr(0, 32);
    v.value = value;
    v.sim_time = sim_time;
    v.step = step;
    return sdk().emit_scalar(std::move(v));
  } catch (...) {
    return VIGIL_EINTERNAL;
  }
}

VIGIL_SDK_EXPORT int vigil_emit_array(const char* name, const double* data, int ndims, const int64_t* dims,
                                      int64_t step, double sim_time, const char* units) {
  if (!valid_name(name) || !data || !dims || ndims < 1 || ndims > VIGIL_MAX_DIMS) return VIGIL_EINVAL;
  std::int64_t count = 1;
  for (int i = 0; i < ndims; ++i) {
    if (dims[i] < 1 || dims[i] > VIGIL_MAX_ARRAY_ELEMENTS) return VIGIL_EINVAL;
    count *= dims[i];
    if (count > VIGIL_MAX_ARRAY_ELEMENTS) return VIGIL_EINVAL;
  }
  try {
    if (!sdk().init()) return 0;
    json a = value_attrs("array", name, step, sim_time, units);
    a["dims"] = std::vector<std::int64_t>(dims, dims + ndims);
    a["data"] = std::vector<double>(data, data + count);
    return sdk().emit(EventType::result, std::move(a), static_cast<std::size_t>(count) * 9);
  } catch (...) {
    return VIGIL_EINTERNAL;
  }
}

VIGIL_SDK_EXPORT int vigil_report_checkpoint(const char* path, int64_t step, double sim_time) {
  if (!valid_path(path)) return VIGIL_EINVAL;
  try {
    return sdk().emit(EventType::checkpoint, {{"path", path}, {"step", step}, {"sim_t", sim_time}});
  } catch (...) {
    return VIGIL_EINTERNAL;
  }
}

// The same event type as a written checkpoint, marked failed: vigild keeps one
// timeline of checkpoint attempts, and `failed` tells it not to restart from this one.
VIGIL_SDK_EXPORT int vigil_report_checkpoint_failed(const char* path, int64_t step, int error_number) {
  if (!valid_path(path) || error_number < 0) return VIGIL_EINVAL;
  try {
    if (!sdk().init()) return 0;  // cheap no-op outside a job: no strerror, no JSON
    return sdk().emit(EventType::checkpoint, {{"path", path},
                                              {"step", step},
                                              {"failed", true},
                                              {"errno", error_number},
                                              {"error", error_text(error_number)}});
  } catch (...) {
    return VIGIL_EINTERNAL;
  }
}

// A final output for vigild's registry (ADR 0013): it digests the file and
// records it once per (job, name, content).
VIGIL_SDK_EXPORT int vigil_report_output(const char* path, const char* name, int64_t step) {
  if (!valid_path(path) || (name && std::strlen(name) > 4096)) return VIGIL_EINVAL;
  try {
    if (!sdk().init()) return 0;
    json attrs = {{"path", path}, {"step", step}};
    if (name && *name) attrs["name"] = name;
    return sdk().emit(EventType::output, std::move(attrs));
  } catch (...) {
    return VIGIL_EINTERNAL;
  }
}

VIGIL_SDK_EXPORT int vigil_checkpoint_signal(void) { return checkpoint_signal_from_env(); }

VIGIL_SDK_EXPORT int vigil_install_checkpoint_handler(void) {
  struct sigaction sa {};
  sa.sa_handler = on_checkpoint_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a checkpoint request must not make the simulation's read() fail with EINTR
  // Re-installing is harmless (same handler) and leaves a pending request set.
  return ::sigaction(checkpoint_signal_from_env(), &sa, nullptr) == 0 ? 0 : VIGIL_EINVAL;
}

VIGIL_SDK_EXPORT int vigil_should_checkpoint(void) {
  return checkpoint_requested.exchange(0, std::memory_order_relaxed) != 0 ? 1 : 0;
}

VIGIL_SDK_EXPORT void vigil_sdk_finalize(int timeout_ms) {
  try {
    sdk().finalize(timeout_ms < 0 ? 0 : timeout_ms);
  } catch (...) {
  }
}

VIGIL_SDK_EXPORT int vigil_sdk_active(void) { return sdk().active() ? 1 : 0; }
VIGIL_SDK_EXPORT uint64_t vigil_sdk_dropped(void) { return sdk().dropped(); }

}  // extern "C"
