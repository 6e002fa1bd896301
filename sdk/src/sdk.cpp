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
// the plugin sends that event as the tasks start, so such values are retried.
constexpr int kUnknownJobRetries = 10;

struct Pending {
  Event event;
  int retries_left = kUnknownJobRetries;
};

class Sdk {
 public:
  bool init() {
    std::lock_guard<std::mutex> g(mu_);
    if (started_) return active_;
    started_ = true;
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
    // Our thread must not take the simulation's signals (e.g. its checkpoint signal).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_ = std::thread([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return active_ = true;
  }

  int emit(EventType type, json attrs) {
    if (!init()) return 0;
    Event e;
    e.id = new_event_id();
    e.type = type;
    e.ts_ns = now_ns();
    e.job = job_;
    e.step = step_;
    e.task = task_;
    e.restart = restart_;
    e.node = node_;
    e.attrs = std::move(attrs);
    {
      std::lock_guard<std::mutex> g(mu_);
      if (queue_.size() >= max_queue_) {
        dropped_++;
        return 0;
      }
      queue_.push_back({std::move(e)});
    }
    cv_.notify_one();
    return 0;
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
        cv_.wait_for(lk, std::chrono::milliseconds(100), [&] { return stopping_ || queue_.size() >= 512; });
        stopping = stopping_;
        const std::size_t n = std::min<std::size_t>(queue_.size(), 2000);
        for (std::size_t i = 0; i < n; ++i) {
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
      for (auto& p : batch) events.push_back(p.event);
      auto ack = client.send_batch(events);
      std::unique_lock<std::mutex> lk(mu_);
      if (!ack) {
        // vigild unreachable: put them back in front, in order, and back off.
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
        while (queue_.size() > max_queue_) {
          queue_.pop_back();
          dropped_++;
        }
        lk.unlock();
        std::this_thread::sleep_for(stopping ? std::chrono::milliseconds(50) : backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
      }
      backoff = std::chrono::milliseconds(200);
      for (const auto& [index, reason] : ack->rejected) {
        if (index >= batch.size()) continue;
        Pending& p = batch[index];
        if (reason.find("unknown to vigild") != std::string::npos && p.retries_left-- > 0) queue_.push_back(std::move(p));
        else dropped_++;
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::size_t max_queue_ = 100000;
  bool started_ = false, active_ = false, stopping_ = false;
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

bool valid_name(const char* name) { return name && *name && std::strlen(name) <= 128; }

}  // namespace

extern "C" {

VIGIL_SDK_EXPORT int vigil_sdk_init(void) {
  try {
    sdk().init();
  } catch (...) {
  }
  return 0;
}

VIGIL_SDK_EXPORT int vigil_emit_scalar(const char* name, double value, int64_t step, double sim_time, const char* units) {
  if (!valid_name(name)) return -1;
  try {
    json a = {{"kind", "scalar"}, {"name", name}, {"v", value}, {"step", step}, {"sim_t", sim_time}};
    if (units && *units) a["units"] = units;
    return sdk().emit(EventType::result, std::move(a));
  } catch (...) {
    return -2;
  }
}

VIGIL_SDK_EXPORT int vigil_report_checkpoint(const char* path, int64_t step, double sim_time) {
  if (!path || !*path || std::strlen(path) > 4096) return -1;
  try {
    return sdk().emit(EventType::checkpoint, {{"path", path}, {"step", step}, {"sim_t", sim_time}});
  } catch (...) {
    return -2;
  }
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
