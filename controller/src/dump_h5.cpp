// dump_h5.cpp — see dump_h5.hpp.
#include "dump_h5.hpp"

#include "vigil/crypto.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace vigil::controller::h5 {
namespace fs = std::filesystem;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The innermost message of HDF5's error stack (the library prints nothing
// itself: automatic printing is switched off for the process).
static herr_t collect(unsigned n, const H5E_error2_t* e, void* out) {
  if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
  return 0;
}

Error h5_error(const std::string& what) {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect, &detail);
  H5Eclear2(H5E_DEFAULT);
  return make_error(Errc::io, "hdf5: " + what + (detail.empty() ? "" : ": " + detail));
}



hid_t scalar_type() {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(ScalarRow));
  H5Tinsert(t, "step", HOFFSET(ScalarRow, step), H5T_NATIVE_INT64);
  H5Tinsert(t, "sim_time", HOFFSET(ScalarRow, sim_time), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "wall_time", HOFFSET(ScalarRow, wall_time), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "value", HOFFSET(ScalarRow, value), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "task", HOFFSET(ScalarRow, task), H5T_NATIVE_INT32);
  H5Tinsert(t, "restart", HOFFSET(ScalarRow, restart), H5T_NATIVE_UINT32);
  H5Tinsert(t, "vigil_seq", HOFFSET(ScalarRow, vigil_seq), H5T_NATIVE_INT64);
  return t;
}
hid_t index_type() {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(IndexRow));
  H5Tinsert(t, "step", HOFFSET(IndexRow, step), H5T_NATIVE_INT64);
  H5Tinsert(t, "sim_time", HOFFSET(IndexRow, sim_time), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "wall_time", HOFFSET(IndexRow, wall_time), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "task", HOFFSET(IndexRow, task), H5T_NATIVE_INT32);
  H5Tinsert(t, "restart", HOFFSET(IndexRow, restart), H5T_NATIVE_UINT32);
  H5Tinsert(t, "vigil_seq", HOFFSET(IndexRow, vigil_seq), H5T_NATIVE_INT64);
  return t;
}

Status set_attr_string(hid_t obj, const char* name, const std::string& value) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  Hid type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), value.size() + 1);
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  Hid space(H5Screate(H5S_SCALAR));
  Hid attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), value.c_str()) < 0)
    return h5_error(std::string("attribute ") + name);
  return ok_status();
}


hid_t append_access() {
  static const hid_t dapl = [] {
    const hid_t p = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(p, 127, 40 * 1024, 1.0);  // one chunk (6 KiB of scalar rows, a 32 KiB 64x64 array)
    return p;
  }();
  return dapl;
}

hid_t file_access() {
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  // The 1.10 file format, whatever HDF5 vigild is built with: SWMR needs at
  // least 1.10, and a dump written by HDF5 1.14 with "latest" bounds uses
  // datatype messages that 1.10 readers reject ("bad version number for
  // datatype message": h5py on Debian 12 reading a dump of vigild on Debian 13,
  // docker-slurm-cluster's smoke test). Readers of 1.10 and later read it.
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
  H5AC_cache_config_t mdc;
  mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  if (H5Pget_mdc_config(fapl, &mdc) >= 0) {
    mdc.set_initial_size = 1;
    mdc.initial_size = 256 * 1024;
    mdc.min_size = 128 * 1024;
    mdc.max_size = 1024 * 1024;
    H5Pset_mdc_config(fapl, &mdc);
  }
  return fapl;
}

// An extendible dataset: dims (0, extra...) growing along the first axis.
hid_t create_extendible(hid_t loc, const std::string& path, hid_t type, const std::vector<hsize_t>& extra,
                        hsize_t chunk_rows) {
  std::vector<hsize_t> cur{0}, max{H5S_UNLIMITED}, chunk{chunk_rows};
  for (hsize_t d : extra) {
    cur.push_back(d);
    max.push_back(d);
    chunk.push_back(d);
  }
  Hid space(H5Screate_simple(static_cast<int>(cur.size()), cur.data(), max.data()));
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
  Hid lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return H5Dcreate2(loc, path.c_str(), type, space.get(), lcpl.get(), dcpl.get(), append_access());
}

// Appends `n` rows (each `row_elems` values of `type`) at the end of `dset`.
Status append_rows(hid_t dset, hsize_t& rows, hid_t type, const void* data, hsize_t n) {
  if (n == 0) return ok_status();
  Hid fspace0(H5Dget_space(dset));
  const int rank = H5Sget_simple_extent_ndims(fspace0.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(fspace0.get(), dims.data(), nullptr);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = rows;
  count[0] = n;
  dims[0] = rows + n;
  if (H5Dset_extent(dset, dims.data()) < 0) return h5_error("extend dataset");
  Hid fspace(H5Dget_space(dset));
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Hid mspace(H5Screate_simple(rank, count.data(), nullptr));
  if (H5Dwrite(dset, type, mspace.get(), fspace.get(), H5P_DEFAULT, data) < 0) return h5_error("write rows");
  rows += n;
  return ok_status();
}

// Creates an empty file that only its owner may read, owned by the job's user,
// before HDF5 opens it: no window in which another user could open it.
Status precreate(const std::string& path, const DumpOwner& owner) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return make_error(Errc::io, "cannot create " + fs::path(path).parent_path().string() + ": " + ec.message());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(Errc::io, "cannot create " + path + ": " + std::strerror(errno));
  if (geteuid() == 0 && fchown(fd, owner.uid, owner.gid) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(Errc::io, "cannot give " + path + " to uid " + std::to_string(owner.uid) + ": " +
                                    std::strerror(err));
  }
  ::close(fd);
  return ok_status();
}

std::string segment_path(const std::string& main_path, int n) {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".seg%03d.h5", n);
  return main_path.substr(0, main_path.size() - 3) + suffix;
}

bool link_exists(hid_t loc, const std::string& path) {
  for (std::size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    const std::string prefix = path.substr(0, end);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (end == std::string::npos) return true;
  }
}

Result<DumpFileInfo> digest(const std::string& path) {
  const FileDigest d = sha256_file(path);
  if (!d.error.empty()) return make_error(Errc::io, "cannot digest " + d.error);
  return DumpFileInfo{path, d.bytes, d.sha256};
}

}  // namespace vigil::controller::h5
