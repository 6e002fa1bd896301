// dump_resume.cpp — a dump's files after they were written: synced to disk,
// reopened (after vigild was killed, or to take late values into a finalised
// dump) and read back (the `results` query, for values that have left the
// store). See dump_writer.hpp and docs/adr/0018-results-leave-the-store.md.
//
// Rows of every dataset are in store order (vigil_seq grows), so "the rows up
// to seq S" is a binary search over one column, never a scan.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "dump_h5.hpp"

namespace vigil::controller {
namespace fs = std::filesystem;
using namespace h5;

namespace {

hsize_t extent0(hid_t dset, std::vector<hsize_t>* dims = nullptr) {
  Hid sp(H5Dget_space(dset));
  const int rank = H5Sget_simple_extent_ndims(sp.get());
  std::vector<hsize_t> d(static_cast<std::size_t>(std::max(rank, 1)), 0);
  H5Sget_simple_extent_dims(sp.get(), d.data(), nullptr);
  if (dims) *dims = d;
  return d[0];
}

// Rows [first, first + n) of `dset` (any rank) into `out`, as `mem_type`.
Status read_rows(hid_t dset, hid_t mem_type, hsize_t first, hsize_t n, void* out) {
  std::vector<hsize_t> dims;
  extent0(dset, &dims);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = first;
  count[0] = n;
  Hid fspace(H5Dget_space(dset));
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Hid mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  if (H5Dread(dset, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, out) < 0) return h5_error("read rows");
  return ok_status();
}

// One int64 member of row `i` of a compound dataset (scalar rows, an index).
Result<std::int64_t> field_at(hid_t dset, hsize_t i, const char* member) {
  Hid mt(H5Tcreate(H5T_COMPOUND, sizeof(std::int64_t)));
  H5Tinsert(mt.get(), member, 0, H5T_NATIVE_INT64);
  std::int64_t v = 0;
  if (auto s = read_rows(dset, mt.get(), i, 1, &v); !s) return s.error();
  return v;
}

// How many of the first `rows` rows have vigil_seq <= seq.
Result<hsize_t> rows_upto(hid_t dset, hsize_t rows, std::int64_t seq) {
  hsize_t lo = 0, hi = rows;
  while (lo < hi) {
    const hsize_t mid = lo + (hi - lo) / 2;
    auto s = field_at(dset, mid, "vigil_seq");
    if (!s) return s.error();
    if (*s <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

Status shrink(hid_t dset, hsize_t rows) {
  std::vector<hsize_t> dims;
  if (extent0(dset, &dims) == rows) return ok_status();
  dims[0] = rows;
  if (H5Dset_extent(dset, dims.data()) < 0) return h5_error("truncate dataset");
  return ok_status();
}

std::string attr_string(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return "";
  Hid a(H5Aopen(obj, name, H5P_DEFAULT));
  Hid t(H5Aget_type(a.get()));
  const std::size_t n = H5Tget_size(t.get());
  std::string s(n, '\0');
  Hid mt(H5Tcopy(H5T_C_S1));
  H5Tset_size(mt.get(), n);
  if (H5Aread(a.get(), mt.get(), s.data()) < 0) return "";
  s.resize(::strnlen(s.c_str(), n));
  return s;
}

// Hard links directly under `group`. External links (a finalised main file's
// links to its segments' metrics) are skipped: those are found in their files.
std::vector<std::string> hard_children(hid_t group) {
  std::vector<std::string> out;
  H5Literate(
      group, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t* info, void* op) -> herr_t {
        if (info->type == H5L_TYPE_HARD) static_cast<std::vector<std::string>*>(op)->push_back(name);
        return 0;
      },
      &out);
  return out;
}

}  // namespace

Status JobDump::flush_files() {
  for (auto& f : files_)
    if (H5Fflush(f->fid.get(), H5F_SCOPE_LOCAL) < 0) return h5_error("flush " + f->path);
  return ok_status();
}

Status JobDump::sync() {
  if (auto s = flush_files(); !s) return s;
  for (auto& f : files_) {
    void* handle = nullptr;
    if (H5Fget_vfd_handle(f->fid.get(), H5P_DEFAULT, &handle) < 0 || !handle)
      return h5_error("file descriptor of " + f->path);
    if (::fsync(*static_cast<int*>(handle)) != 0)
      return make_error(Errc::io, "fsync " + f->path + ": " + std::strerror(errno));
  }
  // The files' directory entries too (a segment may be new since the last sync).
  if (!files_.empty()) {
    const int dfd = ::open(fs::path(main_path_).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return ok_status();
}

Status JobDump::close() {
  if (auto s = flush_files(); !s) return s;
  close_all();
  return ok_status();
}

// H5Fstart_swmr_write gives the datasets open at that moment HDF5's default
// chunk cache (1 MiB each, HDFGroup/hdf5#1730), whatever they were opened
// with: they are opened again with append_access(). Measured before this, in
// the longrun benchmark: +300 MiB of vigild's heap per simulated day, filling
// towards 2 GiB for 100 jobs of 20 metrics.
Status JobDump::start_swmr(std::size_t file, File& f) {
  const hid_t fid = f.fid.get();
  if (H5Fstart_swmr_write(fid) < 0) return h5_error("start SWMR on " + f.path);
  auto again = [&](Hid& d, const std::string& path) -> Status {
    if (!d.valid()) return ok_status();
    d.reset();  // closed first: an open dataset would be shared, with its cache
    d = Hid(H5Dopen2(fid, path.c_str(), append_access()));
    return d.valid() ? ok_status() : h5_error("reopen " + path + " in " + f.path);
  };
  if (auto s = again(f.segments, "/vigil/segments"); !s) return s;
  for (auto& [key, m] : metrics_) {
    if (m->file != file) continue;
    if (auto s = again(m->values, m->array ? m->object + "/values" : m->object); !s) return s;
    if (auto s = again(m->index, m->object + "/index"); !s) return s;
  }
  return ok_status();
}

Result<std::unique_ptr<JobDump>> JobDump::resume(const std::string& main_path, const DumpOwner& owner,
                                                 std::uint32_t job, std::int64_t upto_seq) {
  auto d = std::make_unique<JobDump>(main_path, owner, job);
  if (auto s = d->reopen(true, upto_seq); !s) return s.error();
  return d;
}

Result<std::unique_ptr<JobDump>> JobDump::open_read(const std::string& main_path, std::uint32_t job) {
  auto d = std::make_unique<JobDump>(main_path, DumpOwner{}, job);
  d->read_only_ = true;
  if (auto s = d->reopen(false, 0); !s) return s.error();
  return d;
}

// The main file, then the segments it lists. Segment files it does not list
// were created after its last sync (the listing is flushed with them): they
// hold nothing synced and are removed, so their names can be used again.
Status JobDump::reopen(bool write, std::int64_t upto_seq) {
  if (!fs::exists(main_path_)) return make_error(Errc::unavailable, main_path_ + " does not exist");
  if (auto s = reopen_file(main_path_, write, upto_seq); !s) return s;
  // Segment n is named after the main file (segment_path); the main file
  // lists one row per segment, in order.
  const auto listed = static_cast<int>(files_[0]->segment_rows);
  for (int n = 1; n <= listed; ++n)
    if (auto s = reopen_file(h5::segment_path(main_path_, n), write, upto_seq); !s) return s;
  if (write) {
    std::error_code ec;
    for (int n = listed + 1; n <= kMaxSegments; ++n)
      fs::remove(h5::segment_path(main_path_, n), ec);
  }
  return ok_status();
}

Status JobDump::reopen_file(const std::string& path, bool write, std::int64_t upto_seq) {
  Hid fapl(file_access());
  hbool_t clear = 1;  // a killed writer left its SWMR mark (what h5clear -s removes)
  if (write && H5Pset(fapl.get(), "clear_status_flags", &clear) < 0) return h5_error("file access for " + path);
  auto f = std::make_unique<File>();
  f->path = path;
  f->fid = Hid(H5Fopen(path.c_str(), write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.get()));
  if (!f->fid.valid() && !write)  // still open for writing elsewhere
    f->fid = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()));
  if (!f->fid.valid()) return h5_error("reopen " + path);
  const hid_t fid = f->fid.get();
  // Appends are made visible dataset by dataset (H5Dflush), which writes the
  // datasets' chunks and indexes but not the superblock: after a kill, chunks
  // written since the last sync lie past the end of file the superblock
  // records, and writing to them again would fail ("addr overflow"). The end
  // of file becomes the real one; space past the cut is lost, not reused.
  if (write && H5Fincrement_filesize(fid, 0) < 0) return h5_error("end of file of " + path);
  const std::size_t index = files_.size();
  if (index == 0 && link_exists(fid, "/vigil/segments")) {
    f->segments = Hid(H5Dopen2(fid, "/vigil/segments", append_access()));
    if (f->segments.valid()) f->segment_rows = extent0(f->segments.get());
  }
  if (link_exists(fid, "/stages")) {
    Hid stages(H5Gopen2(fid, "/stages", H5P_DEFAULT));
    for (const std::string& stage : hard_children(stages.get())) {
      Hid group(H5Gopen2(stages.get(), stage.c_str(), H5P_DEFAULT));
      for (const std::string& name : hard_children(group.get())) {
        auto m = std::make_unique<Metric>();
        m->file = index;
        m->stage = stage;
        m->name = name;
        m->object = "/stages/" + stage + "/" + name;
        Hid obj(H5Oopen(group.get(), name.c_str(), H5P_DEFAULT));
        if (!obj.valid()) return h5_error("open " + m->object + " in " + path);
        m->array = attr_string(obj.get(), "kind") == "array";
        m->units = attr_string(obj.get(), "units");
        hid_t key;  // the dataset whose rows carry vigil_seq
        if (!m->array) {
          m->values = Hid(H5Dopen2(group.get(), name.c_str(), append_access()));
          if (!m->values.valid()) return h5_error("open " + m->object);
          m->rows = extent0(m->values.get());
          key = m->values.get();
        } else {
          m->values = Hid(H5Dopen2(obj.get(), "values", append_access()));
          m->index = Hid(H5Dopen2(obj.get(), "index", append_access()));
          if (!m->values.valid() || !m->index.valid()) return h5_error("open " + m->object);
          std::vector<hsize_t> dims;
          const hsize_t values_rows = extent0(m->values.get(), &dims);
          m->dims.assign(dims.begin() + 1, dims.end());
          m->index_rows = extent0(m->index.get());
          m->rows = std::min(values_rows, m->index_rows);  // values are written first: the index is what counts
          key = m->index.get();
        }
        if (write) {
          auto keep = rows_upto(key, m->rows, upto_seq);
          if (!keep) return keep.error();
          m->rows = *keep;
          if (auto s = shrink(m->values.get(), m->rows); !s) return s;
          if (m->array) {
            m->index_rows = m->rows;
            if (auto s = shrink(m->index.get(), m->rows); !s) return s;
          }
        }
        if (m->rows > 0) {
          auto step = field_at(key, m->rows - 1, "step");
          if (!step) return step.error();
          last_step_ = std::max(last_step_, *step);
        }
        records_ += static_cast<std::int64_t>(m->rows);
        metrics_[stage + "/" + name] = std::move(m);
      }
    }
  }
  if (write) {
    if (index == 0 && H5Aexists(fid, "complete") > 0 && H5Adelete(fid, "complete") < 0)
      return h5_error("reopen " + path + " for more values");
    if (auto s = start_swmr(index, *f); !s) return s;
  }
  files_.push_back(std::move(f));
  return ok_status();
}

Result<std::vector<ResultValue>> JobDump::read(std::int64_t after_seq, int limit) {
  std::vector<ResultValue> out;
  const auto cap = static_cast<hsize_t>(std::max(limit, 0));
  Hid st(scalar_type()), it(index_type());
  for (const auto& [key, m] : metrics_) {
    const hid_t seqs = m->array ? m->index.get() : m->values.get();
    auto first = rows_upto(seqs, m->rows, after_seq);
    if (!first) return first.error();
    const hsize_t n = std::min(m->rows - *first, cap);
    if (n == 0) continue;
    auto base = [&](std::int64_t seq, double wall, std::int32_t task, std::uint32_t restart, std::int64_t step,
                    double sim_time) {
      ResultValue v;
      v.job = job_;
      v.seq = seq;
      v.wall_ns = static_cast<std::int64_t>(wall * 1e9);
      v.task = task;
      v.restart = restart;
      v.stage = m->stage;
      v.name = m->name;
      v.units = m->units;
      v.array = m->array;
      v.step = step;
      v.sim_time = sim_time;
      return v;
    };
    if (!m->array) {
      std::vector<ScalarRow> rows(n);
      if (auto s = read_rows(m->values.get(), st.get(), *first, n, rows.data()); !s) return s.error();
      for (const ScalarRow& r : rows) {
        out.push_back(base(r.vigil_seq, r.wall_time, r.task, r.restart, r.step, r.sim_time));
        out.back().value = r.value;
      }
    } else {
      std::vector<IndexRow> index(n);
      if (auto s = read_rows(m->index.get(), it.get(), *first, n, index.data()); !s) return s.error();
      std::size_t per = 1;
      for (std::int64_t d : m->dims) per *= static_cast<std::size_t>(d);
      std::vector<double> data(per * n);
      if (auto s = read_rows(m->values.get(), H5T_NATIVE_DOUBLE, *first, n, data.data()); !s) return s.error();
      for (hsize_t i = 0; i < n; ++i) {
        const IndexRow& r = index[i];
        out.push_back(base(r.vigil_seq, r.wall_time, r.task, r.restart, r.step, r.sim_time));
        out.back().dims = m->dims;
        out.back().data.assign(data.begin() + static_cast<std::ptrdiff_t>(i * per),
                               data.begin() + static_cast<std::ptrdiff_t>((i + 1) * per));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const ResultValue& a, const ResultValue& b) { return a.seq < b.seq; });
  if (out.size() > cap) out.resize(cap);
  return out;
}

}  // namespace vigil::controller
