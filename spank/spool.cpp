// spool.cpp — see spool.hpp.
#include "spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace vigil::spank {
namespace fs = std::filesystem;

namespace {
constexpr char kMagic[8] = {'V', 'G', 'S', 'P', 'O', 'O', 'L', '1'};
}

Spool::Spool(std::string dir, std::string name, std::size_t max_bytes)
    : dir_(std::move(dir)), path_(dir_ + "/" + name), max_bytes_(max_bytes) {}

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
  if (!fs::exists(path_, ec)) buf.append(kMagic, sizeof kMagic);
  std::uint64_t kept = 0;
  for (const Event& e : events) {
    std::string rec = encode_event(e);
    if (used + buf.size() + rec.size() + 4 > max_bytes_) {
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
  // One write() per batch keeps records whole unless the process dies mid-call.
  ssize_t w = ::write(fd, buf.data(), buf.size());
  ::close(fd);
  if (own_lock_ < 0) own_lock_ = spool_lock(path_);
  if (w != static_cast<ssize_t>(buf.size()))
    return make_error(Errc::io, "short write to spool " + path_ + ": " + std::strerror(errno));
  has_data_ = true;
  return ok_status();
}

Result<std::vector<Event>> Spool::read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::io, "cannot read spool " + path);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < sizeof kMagic || std::memcmp(data.data(), kMagic, sizeof kMagic) != 0)
    return make_error(Errc::bad_version, "spool " + path + " has no VGSPOOL1 header");
  std::vector<Event> out;
  std::size_t p = sizeof kMagic;
  while (p + 4 <= data.size()) {
    std::uint32_t n = 0;
    for (int i = 3; i >= 0; --i) n = (n << 8) | static_cast<std::uint8_t>(data[p + static_cast<std::size_t>(i)]);
    if (p + 4 + n > data.size()) break;  // torn tail
    auto j = cbor_decode(std::string_view(data).substr(p + 4, n));
    if (j) {
      auto e = event_from_json(std::move(*j));
      if (e) out.push_back(std::move(e).value());
    }
    p += 4 + n;
  }
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

void spool_unlock(int fd) {
  ::flock(fd, LOCK_UN);
  ::close(fd);
}

}  // namespace vigil::spank
