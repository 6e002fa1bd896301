// spool.cpp — see spool.hpp.
#include "spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace vigil::spank {
namespace fs = std::filesystem;

namespace {
constexpr char kMagic[8] = {'V', 'G', 'S', 'P', 'O', 'O', 'L', '1'};
}

Spool::Spool(std::string dir, std::string name, std::size_t max_bytes)
    : dir_(std::move(dir)), path_(dir_ + "/" + name), max_bytes_(max_bytes) {
  base_ = name.size() > 6 && name.ends_with(".spool") ? name.substr(0, name.size() - 6) : name;
}

Spool::~Spool() {
  if (own_lock_ >= 0) spool_unlock(own_lock_);
}

std::size_t Spool::dir_bytes() const {
  std::size_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  return total;
}

Status Spool::append(const std::vector<Event>& events) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  ::chmod(dir_.c_str(), 0700);  // events name users and jobs: root only
  std::size_t used = dir_bytes();
  std::string buf;
  std::uint64_t kept = 0;
  for (const Event& e : events) {
    std::string rec = encode_event(e);
    if (used + buf.size() + rec.size() + 4 + sizeof kMagic > max_bytes_) {
      dropped_++;
      continue;
    }
    const auto n = static_cast<std::uint32_t>(rec.size());
    for (int i = 0; i < 4; ++i) buf.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    buf += rec;
    kept++;
  }
  if (kept == 0) return events.empty() ? ok_status() : make_error(Errc::io, "spool full: events dropped");
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(Errc::io, "cannot open spool " + path_ + ": " + std::strerror(errno));
  // Our file is ours for the step's life: locked before anything is in it, so
  // a replayer (the relay, a later step) never takes it for an ended step's.
  // A replayer leaves a file that is still empty alone, so the wait is short.
  if (own_lock_ < 0) {
    int lk = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (lk >= 0 && ::flock(lk, LOCK_EX) == 0) own_lock_ = lk;
    else if (lk >= 0) ::close(lk);
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size == 0) buf.insert(0, kMagic, sizeof kMagic);
  // One write() per batch keeps records whole unless the process dies mid-call.
  ssize_t w = ::write(fd, buf.data(), buf.size());
  ::close(fd);
  if (w != static_cast<ssize_t>(buf.size()))
    return make_error(Errc::io, "short write to spool " + path_ + ": " + std::strerror(errno));
  has_data_ = true;
  if (static_cast<std::size_t>(st.st_size) + buf.size() > kRotateBytes && own_lock_ >= 0) {
    spool_unlock(own_lock_);  // complete: replayable (and deletable once sent) from now on
    own_lock_ = -1;
    path_ = dir_ + "/" + base_ + "-" + std::to_string(++rotation_) + ".spool";
  }
  return ok_status();
}

Result<std::vector<Event>> Spool::read_file(const std::string& path) {
  std::size_t next = 0;
  return read_from(path, 0, SIZE_MAX, next);
}

Result<std::vector<Event>> Spool::read_from(const std::string& path, std::size_t offset, std::size_t max,
                                            std::size_t& next) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::io, "cannot read spool " + path);
  // From `offset` on only: the relay reads a growing file a little at a time.
  if (offset > 0) in.seekg(static_cast<std::streamoff>(offset));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  next = offset;
  const std::size_t base = offset;  // data[0] is the file's byte `base`
  if (offset == 0) {
    if (data.size() < sizeof kMagic) return std::vector<Event>{};  // header still being written
    if (std::memcmp(data.data(), kMagic, sizeof kMagic) != 0)
      return make_error(Errc::bad_version, "spool " + path + " has no VGSPOOL1 header");
    next = sizeof kMagic;
  }
  std::vector<Event> out;
  std::size_t p = next - base;
  while (p + 4 <= data.size() && out.size() < max) {
    std::uint32_t n = 0;
    for (int i = 3; i >= 0; --i) n = (n << 8) | static_cast<std::uint8_t>(data[p + static_cast<std::size_t>(i)]);
    if (p + 4 + n > data.size()) break;  // torn (or not yet complete) tail
    auto j = cbor_decode(std::string_view(data).substr(p + 4, n));
    if (j) {
      auto e = event_from_json(std::move(*j));
      if (e) out.push_back(std::move(e).value());
    }
    p += 4 + n;
  }
  next = base + p;
  return out;
}

std::vector<std::string> spool_files_oldest_first(const std::string& dir) {
  std::vector<std::pair<fs::file_time_type, std::string>> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".spool")
      files.emplace_back(e.last_write_time(ec), e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<std::string> out;
  for (auto& f : files) out.push_back(f.second);
  return out;
}

int spool_lock(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool spool_just_created(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  return st.st_size < static_cast<off_t>(sizeof kMagic) && std::time(nullptr) - st.st_mtime < 60;
}

void spool_unlock(int fd) {
  ::flock(fd, LOCK_UN);
  ::close(fd);
}

}  // namespace vigil::spank
