// reporter.hpp — the plugin's one background thread, inside slurmstepd only.
//
// Hooks enqueue events (a mutex and a vector: microseconds, never I/O); the
// thread batches them to vigild, emits heartbeats with cheap samples of the
// step's tasks, delivers periodic checkpoint signals, and spools to node-local
// disk whenever vigild is unreachable, replaying in order when it is back.
// The thread is started after slurmstepd has forked every task, so no task
// inherits it, its ZeroMQ context or its locks.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "options.hpp"
#include "vigil/message.hpp"

namespace vigil::spank {

struct StepIdentity {
  std::uint32_t job = 0;
  std::uint32_t step = kNoStep;
  std::uint32_t restart = 0;
  std::string node;
};

class Reporter {
 public:
  Reporter(SiteConfig site, JobOptions opts, StepIdentity id);
  ~Reporter();
  // An event of this step; fills id, time, job, step, node and restart count.
  void emit(EventType type, std::int32_t task, json attrs);
  void add_task(pid_t pid, std::int32_t task);
  void task_exited(pid_t pid);
  void start();
  // Stops the thread: one last send if vigild was reachable, otherwise spool.
  void stop();

 private:
  void run();
  void drain(bool final_pass);
  json sample_tasks();
  void deliver_checkpoint_signal(const char* reason, std::uint64_t command_id = 0);
  std::vector<Command> commands_;  // received in ACKs, run after the send (thread only)

  SiteConfig site_;
  JobOptions opts_;
  StepIdentity id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> queue_;
  std::map<pid_t, std::int32_t> tasks_;  // live tasks: pid -> global task id
  bool stopping_ = false;
  std::thread thread_;
  struct Link;
  std::unique_ptr<Link> link_;  // client + spool; touched by the thread only
};

}  // namespace vigil::spank
