// spool.hpp — node-local, append-only event spool for when vigild is unreachable.
//
// File layout v1: the 8 bytes "VGSPOOL1", then records of (u32 little-endian
// length, CBOR event). A torn last record (crash mid-append) ends the readable
// part; records before it replay. Replays are harmless: vigild drops event ids
// it has already stored. docs/adr/0006-plugin-spool.md.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "vigil/message.hpp"

namespace vigil::spank {

class Spool {
 public:
  // dir: this node's spool directory; name: this step's file name.
  Spool(std::string dir, std::string name, std::size_t max_bytes);
  ~Spool();  // releases our file's lock: it becomes replayable by later steps
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;
  // Appends in order; counts (and drops) events beyond the per-node byte budget.
  // A file past kRotateBytes is let go of (unlocked) and the next append starts
  // a new one, so a replayer (the relay) can delete what it has sent while a
  // long step goes on: a month-long step's spool stays small.
  Status append(const std::vector<Event>& events);
  static constexpr std::size_t kRotateBytes = 1u << 20;
  bool empty() const { return !has_data_; }
  std::uint64_t dropped() const { return dropped_; }
  // Every spool file in the node directory (ours and ones left by ended steps),
  // oldest first, each locked while replayed by `send`; a file whose events all
  // went through is deleted. Returns false once `send` fails (vigild down again).
  template <class Send>
  bool replay(Send&& send);
  static Result<std::vector<Event>> read_file(const std::string& path);
  // Whole records from byte `offset` on (0: the start, header included), at
  // most `max` events; `next` is where the first record not returned starts
  // (a torn or still-being-written tail is not returned). For the relay.
  static Result<std::vector<Event>> read_from(const std::string& path, std::size_t offset, std::size_t max,
                                              std::size_t& next);

 private:
  std::size_t dir_bytes() const;
  std::string dir_, path_;
  std::string base_;        // this step's file name without ".spool"
  unsigned rotation_ = 0;   // files started after the first (see append)
  std::size_t max_bytes_;
  bool has_data_ = false;
  std::uint64_t dropped_ = 0;
  int own_lock_ = -1;  // flock held on our own file so no other step replays it under us
};

// Implementation detail of replay(), kept out of line.
std::vector<std::string> spool_files_oldest_first(const std::string& dir);
int spool_lock(const std::string& path);  // fd with an exclusive flock, or -1 if busy/missing
void spool_unlock(int fd);
// A file with no complete header yet, created in the last minute: its step is
// about to lock and fill it; a replayer must leave it alone.
bool spool_just_created(const std::string& path);

template <class Send>
bool Spool::replay(Send&& send) {
  for (const std::string& f : spool_files_oldest_first(dir_)) {
    const bool ours = f == path_;
    int fd = ours ? -2 : spool_lock(f);
    if (fd == -1) continue;  // another step is replaying it right now
    if (!ours && spool_just_created(f)) {
      spool_unlock(fd);
      continue;
    }
    auto events = read_file(f);
    bool ok = true;
    if (events) {
      // Chunks keep each frame far below the 1 MiB body limit.
      for (std::size_t i = 0; ok && i < events->size(); i += 500) {
        std::vector<Event> chunk(events->begin() + static_cast<std::ptrdiff_t>(i),
                                 events->begin() + static_cast<std::ptrdiff_t>(std::min(events->size(), i + 500)));
        ok = send(chunk);
      }
    }
    if (ok) std::remove(f.c_str());
    if (fd >= 0) spool_unlock(fd);
    if (!ok) return false;
    if (ours) {
      has_data_ = false;
      if (own_lock_ >= 0) spool_unlock(own_lock_);
      own_lock_ = -1;
    }
  }
  return true;
}

}  // namespace vigil::spank
