// dump_h5.hpp — HDF5 helpers shared by the dump writer's source files
// (dump_writer.cpp: create, append, finalise; dump_resume.cpp: sync, resume,
// read). Private to the controller; every call runs on the writer's thread.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dump_writer.hpp"

namespace vigil::controller {
namespace h5 {

std::int64_t now_ns();
// An error carrying the innermost message of HDF5's error stack (automatic
// printing is off for the process).
Error h5_error(const std::string& what);

// RAII for HDF5 identifiers of any class.
class Hid {
 public:
  Hid() = default;
  explicit Hid(hid_t id) : id_(id) {}
  ~Hid() { reset(); }
  Hid(Hid&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Hid& operator=(Hid&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  hid_t get() const { return id_; }
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0) H5Idec_ref(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// One row of a scalar metric, and of an array metric's index.
struct ScalarRow {
  std::int64_t step;
  double sim_time;
  double wall_time;  // seconds since the epoch, when the simulation emitted it
  double value;
  std::int32_t task;      // the task (SLURM_PROCID) that emitted it
  std::uint32_t restart;  // the attempt (Slurm restart count) that emitted it
  std::int64_t vigil_seq;
};

struct IndexRow {
  std::int64_t step;
  double sim_time;
  double wall_time;
  std::int32_t task;
  std::uint32_t restart;
  std::int64_t vigil_seq;
};

hid_t scalar_type();
hid_t index_type();
Status set_attr_string(hid_t obj, const char* name, const std::string& value);
template <typename T>
Status set_attr(hid_t obj, const char* name, hid_t mem_type, T value) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);  // finalised again (late values)
  Hid space(H5Screate(H5S_SCALAR));
  Hid attr(H5Acreate2(obj, name, mem_type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.get(), mem_type, &value) < 0) return h5_error(std::string("attribute ") + name);
  return ok_status();
}
// Dataset access for appending: a chunk cache of one chunk (40 KiB) instead
// of HDF5's 1 MiB default. Only the last chunk is ever written again, and the
// default kept up to 1 MiB of written chunks per dataset — for 100 jobs of 20
// metrics up to 2 GiB of vigild's memory, filling as the datasets grow (the
// RSS growth of the longrun and scale benchmarks).
hid_t append_access();  // a property list id (owned by the library: do not close)
// File access for every dump file: the v1.10 format SWMR needs, and a small
// metadata cache (HDF5's default grows to 32 MiB per open file; a site with
// hundreds of running jobs keeps that many files open). A new list to close.
hid_t file_access();
// An extendible dataset: dims (0, extra...) growing along the first axis.
hid_t create_extendible(hid_t loc, const std::string& path, hid_t type, const std::vector<hsize_t>& extra,
                        hsize_t chunk_rows);
// Appends `n` rows (each `row_elems` values of `type`) at the end of `dset`.
Status append_rows(hid_t dset, hsize_t& rows, hid_t type, const void* data, hsize_t n);
// Creates an empty file that only its owner may read, owned by the job's user.
Status precreate(const std::string& path, const DumpOwner& owner);
std::string segment_path(const std::string& main_path, int n);
// Whether every link of the absolute `path` exists (H5Lexists alone fails on a
// missing intermediate group).
bool link_exists(hid_t loc, const std::string& path);
Result<DumpFileInfo> digest(const std::string& path);

}  // namespace h5

using h5::Hid;

struct JobDump::File {
  std::string path;
  Hid fid;
  Hid segments;  // main file only: /vigil/segments
  hsize_t segment_rows = 0;
  bool segments_grew = false;  // flushed with the next append's datasets
};

struct JobDump::Metric {
  std::size_t file = 0;  // index in files_
  bool array = false;
  std::vector<std::int64_t> dims;
  Hid values, index;  // scalars: values only (compound rows)
  hsize_t rows = 0, index_rows = 0;
  std::string object;  // path inside its file
  std::string stage, name, units;
};

}  // namespace vigil::controller
