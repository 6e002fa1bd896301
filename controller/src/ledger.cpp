// ledger.cpp — see ledger.hpp.
#include "ledger.hpp"

#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "vigil/crypto.hpp"

namespace vigil::controller {

DigestWorker::DigestWorker() {
  thread_ = std::thread([this] { run(); });
}

DigestWorker::~DigestWorker() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DigestWorker::submit(Task t) {
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back(std::move(t));
  }
  cv_.notify_one();
}

std::vector<DigestWorker::Done> DigestWorker::take_done() {
  std::lock_guard<std::mutex> g(mu_);
  return std::exchange(done_, {});
}

void DigestWorker::drain() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_cv_.wait(lk, [&] { return queue_.empty() && !busy_; });
}

void DigestWorker::run() {
  for (;;) {
    Task t;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      t = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    Done d = work(t);
    {
      std::lock_guard<std::mutex> g(mu_);
      done_.push_back(std::move(d));
      busy_ = false;
    }
    idle_cv_.notify_all();
  }
}

namespace {
// vigild runs as root: it digests only regular files of the job's own user, so
// a job cannot learn the size or digest of a file it could not read itself.
FileDigest digest_as(const std::string& path, uid_t owner, std::int64_t* mtime_ns = nullptr) {
  FileDigest d;
  struct stat st {};
  if (path.empty() || path.front() != '/') {
    d.error = path + ": not an absolute path";
  } else if (lstat(path.c_str(), &st) != 0) {
    d.error = path + ": " + std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    d.error = path + ": not a regular file";
  } else if (owner != 0 && st.st_uid != owner) {
    d.error = path + ": not owned by the job's user";
  } else {
    d = sha256_file(path);
    if (mtime_ns) *mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  }
  return d;
}

// Retention deletes a checkpoint with the job user's file-system identity
// (setfsuid is per thread on Linux): the kernel then lets vigild delete only
// what the user could delete. Before that, the file must still be the one that
// was verified: a regular file of the user with the recorded size and mtime.
std::string prune_as(const CheckpointEntry& e, uid_t uid, gid_t gid) {
  struct stat st {};
  if (e.path.empty() || e.path.front() != '/') return e.path + ": not an absolute path";
  if (lstat(e.path.c_str(), &st) != 0) return errno == ENOENT ? std::string() : e.path + ": " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return e.path + ": not a regular file";
  if (uid == 0 || st.st_uid != uid) return e.path + ": not owned by the job's user";
  const std::int64_t mtime = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (static_cast<std::uint64_t>(st.st_size) != e.bytes || (e.mtime_ns != 0 && mtime != e.mtime_ns))
    return e.path + ": changed since it was verified";
  const int old_gid = setfsgid(gid), old_uid = setfsuid(uid);
  std::string err;
  if (setfsuid(uid) != static_cast<int>(uid)) err = e.path + ": could not take the user's identity";
  else if (unlink(e.path.c_str()) != 0 && errno != ENOENT) err = e.path + ": " + std::strerror(errno);
  setfsuid(old_uid);
  setfsgid(old_gid);
  return err;
}
}  // namespace

DigestWorker::Done DigestWorker::work(Task& t) {
  const auto t0 = std::chrono::steady_clock::now();
  Done d;
  d.kind = t.kind;
  d.token = t.token;
  d.job = t.job;
  d.name = std::move(t.name);
  if (t.kind == Task::Kind::prune || t.kind == Task::Kind::prune_output) {
    d.entry = std::move(t.entry);
    d.why = std::move(t.why);
    d.error = prune_as(d.entry, t.owner, t.group);
  } else if (t.kind == Task::Kind::ledger || t.kind == Task::Kind::output) {
    d.entry = std::move(t.entry);
    const FileDigest fd = digest_as(d.entry.path, t.owner, &d.entry.mtime_ns);
    if (fd.error.empty()) {
      d.entry.bytes = fd.bytes;
      d.entry.sha256 = fd.sha256;
    } else {
      d.error = fd.error;
    }
  } else {
    for (CheckpointEntry& c : t.candidates) {
      const FileDigest fd = digest_as(c.path, t.owner);
      if (!fd.error.empty()) {
        d.skipped.emplace_back(c, "unreadable: " + fd.error);
        continue;
      }
      if (fd.sha256 != c.sha256 || fd.bytes != c.bytes) {
        d.skipped.emplace_back(c, "changed since it was reported: sha256 " + fd.sha256.substr(0, 16) + "…, " +
                                      std::to_string(fd.bytes) + " bytes; recorded " + c.sha256.substr(0, 16) +
                                      "…, " + std::to_string(c.bytes) + " bytes");
        continue;
      }
      d.chosen = c;
      break;
    }
  }
  d.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

}  // namespace vigil::controller
