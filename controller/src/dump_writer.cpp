// dump_writer.cpp — see dump_writer.hpp and docs/adr/0010-result-dumps.md.
#include "dump_writer.hpp"

#include "vigil/crypto.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

namespace vigil::controller {
namespace fs = std::filesystem;

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The innermost message of HDF5's error stack (the library prints nothing
// itself: automatic printing is switched off for the process).
herr_t collect(unsigned n, const H5E_error2_t* e, void* out) {
  if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
  return 0;
}

Error h5_error(const std::string& what) {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect, &detail);
  H5Eclear2(H5E_DEFAULT);
  return make_error(Errc::io, "hdf5: " + what + (detail.empty() ? "" : ": " + detail));
}

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
  Hid type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), value.size() + 1);
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  Hid space(H5Screate(H5S_SCALAR));
  Hid attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), value.c_str()) < 0)
    return h5_error(std::string("attribute ") + name);
  return ok_status();
}

template <typename T>
Status set_attr(hid_t obj, const char* name, hid_t mem_type, T value) {
  Hid space(H5Screate(H5S_SCALAR));
  Hid attr(H5Acreate2(obj, name, mem_type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.get(), mem_type, &value) < 0) return h5_error(std::string("attribute ") + name);
  return ok_status();
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
  return H5Dcreate2(loc, path.c_str(), type, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT);
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

Result<DumpFileInfo> digest(const std::string& path) {
  const FileDigest d = sha256_file(path);
  if (!d.error.empty()) return make_error(Errc::io, "cannot digest " + d.error);
  return DumpFileInfo{path, d.bytes, d.sha256};
}

}  // namespace

// ---------------------------------------------------------------- paths

Status check_dump_pattern(const std::string& pattern) {
  if (pattern.empty() || pattern.front() == '/' || pattern.find("..") != std::string::npos)
    return make_error(Errc::malformed, "results_pattern must be a relative path without '..'");
  if (pattern.find("{job}") == std::string::npos) return make_error(Errc::malformed, "results_pattern needs {job}");
  if (pattern.size() < 3 || pattern.compare(pattern.size() - 3, 3, ".h5") != 0)
    return make_error(Errc::malformed, "results_pattern must end in .h5");
  return ok_status();
}

Result<std::string> dump_path(const std::string& root, const std::string& pattern, const DumpOwner& owner,
                              std::uint32_t job) {
  if (auto s = check_dump_pattern(pattern); !s) return s.error();
  if (owner.user.empty() && pattern.find("{user}") != std::string::npos)
    return make_error(Errc::unavailable, "job " + std::to_string(job) + " has no known user");
  std::string out;
  for (std::size_t i = 0; i < pattern.size();) {
    if (pattern.compare(i, 6, "{user}") == 0) out += owner.user, i += 6;
    else if (pattern.compare(i, 5, "{uid}") == 0) out += std::to_string(owner.uid), i += 5;
    else if (pattern.compare(i, 5, "{job}") == 0) {
      out += std::to_string(job);
      if (owner.incarnation > 0) out += "." + std::to_string(owner.incarnation);
      i += 5;
    }
    else out += pattern[i++];
  }
  return (fs::path(root) / out).string();
}

// ---------------------------------------------------------------- JobDump

struct JobDump::File {
  std::string path;
  Hid fid;
  Hid segments;  // main file only: /vigil/segments
  hsize_t segment_rows = 0;
  bool dirty = false;
};

struct JobDump::Metric {
  std::size_t file = 0;  // index in files_
  bool array = false;
  std::vector<std::int64_t> dims;
  Hid values, index;  // scalars: values only (compound rows)
  hsize_t rows = 0, index_rows = 0;
  std::string object;  // path inside its file
};

JobDump::JobDump(std::string main_path, DumpOwner owner, std::uint32_t job)
    : main_path_(std::move(main_path)), owner_(std::move(owner)), job_(job) {}

JobDump::~JobDump() { close_all(); }

void JobDump::close_all() {
  metrics_.clear();  // datasets before their files
  files_.clear();
}

void JobDump::remove_files(const std::string& main_path) {
  std::error_code ec;
  fs::remove(main_path, ec);
  for (int n = 1; n <= kMaxSegments; ++n) fs::remove(segment_path(main_path, n), ec);
}

// Creates the next file (main, then segments) holding the metrics whose first
// values are `firsts`, then switches it to SWMR mode.
Status JobDump::create_file(const std::vector<const ResultValue*>& firsts) {
  const int n = static_cast<int>(files_.size());
  const std::string path = n == 0 ? main_path_ : segment_path(main_path_, n);
  if (auto s = precreate(path, owner_); !s) return s;
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);  // SWMR needs the v1.10 format
  auto f = std::make_unique<File>();
  f->path = path;
  f->fid = Hid(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  if (!f->fid.valid()) return h5_error("create " + path);
  const hid_t fid = f->fid.get();
  if (auto s = set_attr(fid, "vigil_layout_version", H5T_NATIVE_INT, kDumpLayoutVersion); !s) return s;
  if (auto s = set_attr(fid, "job", H5T_NATIVE_UINT32, job_); !s) return s;
  if (auto s = set_attr(fid, "segment", H5T_NATIVE_INT, n); !s) return s;
  if (auto s = set_attr(fid, "created_unix", H5T_NATIVE_DOUBLE, static_cast<double>(now_ns()) / 1e9); !s) return s;
  if (auto s = set_attr_string(fid, "user", owner_.user); !s) return s;
  if (auto s = set_attr_string(fid, "main_file", fs::path(main_path_).filename().string()); !s) return s;
  if (n == 0) {
    Hid str(H5Tcopy(H5T_C_S1));
    H5Tset_size(str.get(), 256);
    f->segments = Hid(create_extendible(fid, "/vigil/segments", str.get(), {}, 32));
    if (!f->segments.valid()) return h5_error("create /vigil/segments");
  }
  Hid st(scalar_type()), it(index_type());
  for (const ResultValue* v : firsts) {
    auto m = std::make_unique<Metric>();
    m->file = files_.size();
    m->array = v->array;
    m->dims = v->dims;
    m->object = "/stages/" + v->stage + "/" + v->name;
    Hid obj;
    if (!v->array) {
      m->values = Hid(create_extendible(fid, m->object, st.get(), {}, 512));
      if (!m->values.valid()) return h5_error("create " + m->object);
      obj = Hid(H5Oopen(fid, m->object.c_str(), H5P_DEFAULT));
    } else {
      std::vector<hsize_t> extra(v->dims.begin(), v->dims.end());
      m->values = Hid(create_extendible(fid, m->object + "/values", H5T_NATIVE_DOUBLE, extra, 1));
      m->index = Hid(create_extendible(fid, m->object + "/index", it.get(), {}, 64));
      if (!m->values.valid() || !m->index.valid()) return h5_error("create " + m->object);
      obj = Hid(H5Oopen(fid, m->object.c_str(), H5P_DEFAULT));
    }
    if (auto s = set_attr_string(obj.get(), "kind", v->array ? "array" : "scalar"); !s) return s;
    if (auto s = set_attr_string(obj.get(), "units", v->units); !s) return s;
    if (auto s = set_attr_string(obj.get(), "stage", v->stage); !s) return s;
    if (auto s = set_attr_string(obj.get(), "name", v->name); !s) return s;
    metrics_[v->stage + "/" + v->name] = std::move(m);
  }
  // From here on only appends: readers may open the file (h5py swmr=True).
  if (H5Fstart_swmr_write(fid) < 0) return h5_error("start SWMR on " + path);
  files_.push_back(std::move(f));
  if (n > 0) {  // announce the segment in the main file
    File& main = *files_[0];
    char name[256] = {};
    std::snprintf(name, sizeof name, "%s", fs::path(path).filename().c_str());
    Hid str(H5Tcopy(H5T_C_S1));
    H5Tset_size(str.get(), 256);
    if (auto s = append_rows(main.segments.get(), main.segment_rows, str.get(), name, 1); !s) return s;
    main.dirty = true;
  }
  spdlog::info("job {}: results file {} ({} metric(s))", job_, path, firsts.size());
  return ok_status();
}

Status JobDump::append(const std::vector<ResultValue>& values) {
  // 1. Metrics seen for the first time get a home: the main file while it does
  //    not exist yet, else a new segment (at most kMaxSegments).
  std::vector<const ResultValue*> firsts;
  std::map<std::string, bool> fresh;
  for (const ResultValue& v : values) {
    const std::string key = v.stage + "/" + v.name;
    if (metrics_.count(key) || fresh.count(key)) continue;
    fresh[key] = true;
    firsts.push_back(&v);
  }
  if (!firsts.empty()) {
    if (static_cast<int>(files_.size()) > kMaxSegments) {
      refused_ += firsts.size();
      spdlog::warn("job {}: {} new metric(s) refused: more than {} result segments", job_, firsts.size(), kMaxSegments);
    } else if (auto s = create_file(firsts); !s) {
      return s;
    }
  }
  // 2. Rows grouped per metric, written in one call each, in store order.
  std::map<Metric*, std::vector<const ResultValue*>> per;
  for (const ResultValue& v : values) {
    auto it = metrics_.find(v.stage + "/" + v.name);
    if (it == metrics_.end()) continue;  // refused above
    Metric* m = it->second.get();
    if (m->array != v.array || (v.array && m->dims != v.dims)) {
      ++refused_;
      spdlog::warn("job {}: value of {}/{} refused: its kind or shape differs from the first value", job_, v.stage,
                   v.name);
      continue;
    }
    per[m].push_back(&v);
  }
  Hid st(scalar_type()), it(index_type());
  for (auto& [m, vs] : per) {
    if (!m->array) {
      std::vector<ScalarRow> rows;
      rows.reserve(vs.size());
      for (const ResultValue* v : vs)
        rows.push_back({v->step, v->sim_time, static_cast<double>(v->wall_ns) / 1e9, v->value, v->task, v->restart,
                        v->seq});
      if (auto s = append_rows(m->values.get(), m->rows, st.get(), rows.data(), rows.size()); !s) return s;
    } else {
      std::vector<double> data;
      std::vector<IndexRow> index;
      for (const ResultValue* v : vs) {
        data.insert(data.end(), v->data.begin(), v->data.end());
        index.push_back({v->step, v->sim_time, static_cast<double>(v->wall_ns) / 1e9, v->task, v->restart, v->seq});
      }
      // Values first, then the index: a reader trusts the index length.
      if (auto s = append_rows(m->values.get(), m->rows, H5T_NATIVE_DOUBLE, data.data(), vs.size()); !s) return s;
      if (auto s = append_rows(m->index.get(), m->index_rows, it.get(), index.data(), index.size()); !s) return s;
    }
    files_[m->file]->dirty = true;
    records_ += static_cast<std::int64_t>(vs.size());
    for (const ResultValue* v : vs) last_step_ = std::max(last_step_, v->step);
  }
  // 3. Make it visible to SWMR readers.
  for (auto& f : files_) {
    if (!f->dirty) continue;
    if (H5Fflush(f->fid.get(), H5F_SCOPE_LOCAL) < 0) return h5_error("flush " + f->path);
    f->dirty = false;
  }
  return ok_status();
}

Result<std::vector<DumpFileInfo>> JobDump::finalise() {
  std::vector<std::pair<std::string, std::string>> links;  // object -> segment file name
  for (const auto& [key, m] : metrics_)
    if (m->file > 0) links.emplace_back(m->object, fs::path(files_[m->file]->path).filename().string());
  std::vector<std::string> paths;
  for (const auto& f : files_) paths.push_back(f->path);
  close_all();
  if (paths.empty()) return std::vector<DumpFileInfo>{};
  // Out of SWMR mode: the main file now gets links to the segments' metrics,
  // so h5py/h5dump see one tree, and is marked complete.
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  Hid fid(H5Fopen(paths[0].c_str(), H5F_ACC_RDWR, fapl.get()));
  if (!fid.valid()) return h5_error("reopen " + paths[0]);
  Hid lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  for (const auto& [object, file] : links)
    if (H5Lcreate_external(file.c_str(), object.c_str(), fid.get(), object.c_str(), lcpl.get(), H5P_DEFAULT) < 0)
      return h5_error("link " + object);
  if (auto s = set_attr(fid.get(), "complete", H5T_NATIVE_INT, 1); !s) return s.error();
  if (auto s = set_attr(fid.get(), "finalised_unix", H5T_NATIVE_DOUBLE, static_cast<double>(now_ns()) / 1e9); !s)
    return s.error();
  if (auto s = set_attr(fid.get(), "records", H5T_NATIVE_INT64, records_); !s) return s.error();
  if (H5Fclose(fid.release()) < 0) return h5_error("close " + paths[0]);
  std::vector<DumpFileInfo> out;
  for (const auto& p : paths) {
    // Durable before its digest is recorded.
    if (int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    auto d = digest(p);
    if (!d) return d.error();
    out.push_back(std::move(*d));
  }
  return out;
}

// ---------------------------------------------------------------- DumpWriter

DumpWriter::DumpWriter(std::string root, std::string pattern, Loader loader)
    : root_(std::move(root)), pattern_(std::move(pattern)), loader_(std::move(loader)) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are returned and logged, not printed
  thread_ = std::thread([this] { run(); });
}

DumpWriter::~DumpWriter() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DumpWriter::append(const DumpOwner& owner, std::vector<ResultValue> values) {
  if (values.empty()) return;
  Task t;
  t.kind = Task::Kind::append;
  t.job = values.front().job;
  t.owner = owner;
  t.values = std::move(values);
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back(std::move(t));
  }
  cv_.notify_one();
}

void DumpWriter::finalise(std::uint32_t job, const DumpOwner& owner, std::string reason) {
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back({Task::Kind::finalise, job, owner, {}, std::move(reason)});
  }
  cv_.notify_one();
}

void DumpWriter::rebuild(std::uint32_t job, const DumpOwner& owner) {
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back({Task::Kind::rebuild, job, owner, {}, {}});
  }
  cv_.notify_one();
}

std::vector<DumpFinal> DumpWriter::take_finished() {
  std::lock_guard<std::mutex> g(mu_);
  return std::exchange(finished_, {});
}

void DumpWriter::drain() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_cv_.wait(lk, [&] { return (queue_.empty() && !busy_) || stop_; });
}

DumpWriter::Stats DumpWriter::stats() const {
  Stats s;
  s.records = records_;
  s.refused = refused_;
  s.errors = errors_;
  s.rebuilds = rebuilds_;
  s.finalised = finalised_;
  s.files_open = open_;
  std::lock_guard<std::mutex> g(mu_);
  s.queued = queue_.size();
  return s;
}

void DumpWriter::run() {
  for (;;) {
    std::deque<Task> work;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty() && stop_) break;
      work.swap(queue_);
      busy_ = true;
    }
    // Consecutive appends for one job become one write (one flush per file).
    for (std::size_t i = 0; i < work.size(); ++i) {
      Task& t = work[i];
      while (t.kind == Task::Kind::append && i + 1 < work.size() && work[i + 1].kind == Task::Kind::append &&
             work[i + 1].job == t.job) {
        auto& more = work[++i].values;
        t.values.insert(t.values.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
      }
      try {
        handle(t);
      } catch (const std::exception& e) {  // never lose the thread
        errors_++;
        spdlog::error("results writer: job {}: {}", t.job, e.what());
      }
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      busy_ = false;
    }
    idle_cv_.notify_all();
  }
  // Shutdown: files stay as they are (readable; rebuilt from the store at the
  // next start), so a stop never waits on a long finalisation.
  jobs_.clear();
  open_ = 0;
  idle_cv_.notify_all();
}

void DumpWriter::fail(std::uint32_t job, JobState& st, const Error& err) {
  errors_++;
  spdlog::error("job {}: results file: {} (the values stay in the store; rebuilding in 30 s)", job, err.what());
  if (st.dump) open_--;
  st.dump.reset();
  st.retry_after_ns = now_ns() + 30'000'000'000LL;
}

// A job's dump as of everything the store holds: old files (from a previous
// vigild, or broken by an error) are replaced by a rebuild.
bool DumpWriter::open_job(std::uint32_t job, const DumpOwner& owner, JobState& st) {
  auto path = dump_path(root_, pattern_, owner, job);
  if (!path) {
    fail(job, st, path.error());
    return false;
  }
  JobDump::remove_files(*path);
  st.dump = std::make_unique<JobDump>(*path, owner, job);
  open_++;
  st.written_seq = 0;
  rebuilds_++;
  for (;;) {
    auto page = loader_(job, st.written_seq, 5000);
    if (!page) {
      fail(job, st, page.error());
      return false;
    }
    if (page->empty()) break;
    const std::int64_t last = page->back().seq;
    if (auto s = append_counted(st, *page); !s) {
      fail(job, st, s.error());
      return false;
    }
    st.written_seq = last;
  }
  return true;
}

void DumpWriter::write(std::uint32_t job, JobState& st, const std::vector<ResultValue>& values) {
  std::vector<ResultValue> fresh;
  for (const ResultValue& v : values)
    if (v.seq > st.written_seq) fresh.push_back(v);  // the rebuild already has the rest
  if (fresh.empty()) return;
  if (auto s = append_counted(st, fresh); !s) return fail(job, st, s.error());
  st.written_seq = fresh.back().seq;
}

Status DumpWriter::append_counted(JobState& st, const std::vector<ResultValue>& values) {
  const auto refused_before = st.dump->refused();
  const auto records_before = st.dump->records();
  if (auto s = st.dump->append(values); !s) return s;
  refused_ += st.dump->refused() - refused_before;
  records_ += static_cast<std::uint64_t>(st.dump->records() - records_before);
  return ok_status();
}

void DumpWriter::handle(Task& t) {
  JobState& st = jobs_[t.job];
  switch (t.kind) {
    case Task::Kind::append:
      if (!st.dump) {
        if (now_ns() < st.retry_after_ns) return;  // in the store; the rebuild will add them
        if (!open_job(t.job, t.owner, st)) return;
      }
      return write(t.job, st, t.values);
    case Task::Kind::rebuild:
      if (st.dump) return;  // already current in this process
      open_job(t.job, t.owner, st);
      return;
    case Task::Kind::finalise: {
      DumpFinal out;
      out.job = t.job;
      out.reason = t.reason;
      if (!st.dump && !open_job(t.job, t.owner, st)) {
        out.ok = false;
        out.error = "results file could not be rebuilt";
      } else {
        out.records = st.dump->records();
        out.last_step = st.dump->last_step();
        auto files = st.dump->finalise();
        if (!files) {
          errors_++;
          out.ok = false;
          out.error = files.error().what();
          spdlog::error("job {}: finalising results: {}", t.job, out.error);
        } else {
          out.files = std::move(*files);
          finalised_++;
          if (!out.files.empty())
            spdlog::info("job {}: results final: {} records in {} file(s), {} sha256 {}", t.job, out.records,
                         out.files.size(), out.files.front().path, out.files.front().sha256);
        }
        open_--;
      }
      jobs_.erase(t.job);
      std::lock_guard<std::mutex> g(mu_);
      finished_.push_back(std::move(out));
      return;
    }
  }
}

}  // namespace vigil::controller
