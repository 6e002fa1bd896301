// dump_writer.cpp — see dump_writer.hpp and docs/adr/0010-result-dumps.md.
#include "dump_writer.hpp"

#include "dump_h5.hpp"

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
using namespace h5;


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
  fs::remove(main_path + kFreshSuffix, ec);
  for (int n = 1; n <= kMaxSegments; ++n) {
    fs::remove(segment_path(main_path, n), ec);
    fs::remove(segment_path(main_path, n) + kFreshSuffix, ec);
  }
}

// Creates the next file (main, then segments) holding the metrics whose first
// values are `firsts`, then switches it to SWMR mode. It is made under a
// temporary name and appears under its own only then: a reader polling for
// it never opens a half-made file, and never holds HDF5's file lock while
// vigild creates it (which made the create fail: seen in the result-latency
// benchmark, 2 jobs in 15, their values invisible until a retry 30 s later).
Status JobDump::create_file(const std::vector<const ResultValue*>& firsts) {
  const int n = static_cast<int>(files_.size());
  const std::string path = n == 0 ? main_path_ : segment_path(main_path_, n);
  const std::string fresh = path + kFreshSuffix;
  std::error_code ec;
  fs::remove(fresh, ec);  // left by a crash mid-create
  if (auto s = precreate(fresh, owner_); !s) return s;
  Hid fapl(file_access());
  auto f = std::make_unique<File>();
  f->path = path;
  f->fid = Hid(H5Fcreate(fresh.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  if (!f->fid.valid()) return h5_error("create " + fresh);
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
    m->stage = v->stage;
    m->name = v->name;
    m->units = v->units;
    Hid obj;
    if (!v->array) {
      m->values = Hid(create_extendible(fid, m->object, st.get(), {}, 128));
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
  if (auto s = start_swmr(files_.size(), *f); !s) return s;
  if (::rename(fresh.c_str(), path.c_str()) != 0)
    return make_error(Errc::io, "cannot rename " + fresh + " to " + path + ": " + std::strerror(errno));
  files_.push_back(std::move(f));
  if (n > 0) {  // announce the segment in the main file
    File& main = *files_[0];
    char name[256] = {};
    std::snprintf(name, sizeof name, "%s", fs::path(path).filename().c_str());
    Hid str(H5Tcopy(H5T_C_S1));
    H5Tset_size(str.get(), 256);
    if (auto s = append_rows(main.segments.get(), main.segment_rows, str.get(), name, 1); !s) return s;
    main.segments_grew = true;
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
  std::vector<hid_t> grown;  // datasets to flush, values before their index
  for (auto& [m, vs] : per) {
    if (!m->array) {
      std::vector<ScalarRow> rows;
      rows.reserve(vs.size());
      for (const ResultValue* v : vs)
        rows.push_back({v->step, v->sim_time, static_cast<double>(v->wall_ns) / 1e9, v->value, v->task, v->restart,
                        v->seq});
      if (auto s = append_rows(m->values.get(), m->rows, st.get(), rows.data(), rows.size()); !s) return s;
      grown.push_back(m->values.get());
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
      grown.push_back(m->values.get());
      grown.push_back(m->index.get());
    }
    records_ += static_cast<std::int64_t>(vs.size());
    for (const ResultValue* v : vs) last_step_ = std::max(last_step_, v->step);
  }
  // 3. Make it visible to SWMR readers: each grown dataset's chunks, extent and
  //    chunk index. H5Fflush would do the same but first walks every dataset
  //    open in the process (H5D_flush_all): with 100 open dumps that walk was
  //    half the writer's time (docs/research/longrun-bench.md).
  if (!files_.empty() && files_[0]->segments_grew) {
    grown.push_back(files_[0]->segments.get());
    files_[0]->segments_grew = false;
  }
  for (hid_t d : grown)
    if (H5Dflush(d) < 0) return h5_error("flush a dataset of job " + std::to_string(job_));
  return ok_status();
}

Result<std::vector<DumpFileInfo>> JobDump::finalise() {
  std::vector<std::pair<std::string, std::string>> links;  // object -> segment file name
  for (const auto& [key, m] : metrics_)
    if (m->file > 0) links.emplace_back(m->object, fs::path(files_[m->file]->path).filename().string());
  std::vector<std::string> paths;
  for (const auto& f : files_) paths.push_back(f->path);
  if (auto s = close(); !s) return s.error();
  if (paths.empty()) return std::vector<DumpFileInfo>{};
  // Out of SWMR mode: the main file now gets links to the segments' metrics,
  // so h5py/h5dump see one tree, and is marked complete.
  Hid fapl(file_access());
  Hid fid(H5Fopen(paths[0].c_str(), H5F_ACC_RDWR, fapl.get()));
  if (!fid.valid()) return h5_error("reopen " + paths[0]);
  Hid lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  for (const auto& [object, file] : links) {
    if (h5::link_exists(fid.get(), object)) continue;  // finalised before (late values)
    if (H5Lcreate_external(file.c_str(), object.c_str(), fid.get(), object.c_str(), lcpl.get(), H5P_DEFAULT) < 0)
      return h5_error("link " + object);
  }
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

DumpWriter::DumpWriter(std::string root, std::string pattern, Loader loader, DumpedUpto dumped)
    : root_(std::move(root)), pattern_(std::move(pattern)), loader_(std::move(loader)), dumped_(std::move(dumped)) {
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

void DumpWriter::push(Task t) {
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back(std::move(t));
  }
  cv_.notify_one();
}

void DumpWriter::append(const DumpOwner& owner, std::vector<ResultValue> values) {
  if (values.empty()) return;
  Task t;
  t.kind = Task::Kind::append;
  t.job = values.front().job;
  t.owner = owner;
  t.values = std::move(values);
  push(std::move(t));
}

void DumpWriter::finalise(std::uint32_t job, const DumpOwner& owner, std::string reason) {
  push({Task::Kind::finalise, job, owner, {}, std::move(reason)});
}

void DumpWriter::rebuild(std::uint32_t job, const DumpOwner& owner) { push({Task::Kind::rebuild, job, owner, {}, {}}); }

void DumpWriter::read(std::uint64_t id, std::uint32_t job, const DumpOwner& owner, std::int64_t after_seq,
                      int limit) {
  Task t;
  t.kind = Task::Kind::read;
  t.job = job;
  t.owner = owner;
  t.read_id = id;
  t.after_seq = after_seq;
  t.limit = limit;
  push(std::move(t));
}

void DumpWriter::sync() {
  Task t;
  t.kind = Task::Kind::sync;
  push(std::move(t));
}

std::vector<DumpFinal> DumpWriter::take_finished() {
  std::lock_guard<std::mutex> g(mu_);
  return std::exchange(finished_, {});
}

std::vector<DumpSynced> DumpWriter::take_synced() {
  std::lock_guard<std::mutex> g(mu_);
  return std::exchange(synced_, {});
}

std::vector<DumpRead> DumpWriter::take_reads() {
  std::lock_guard<std::mutex> g(mu_);
  return std::exchange(reads_, {});
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
  s.syncs = syncs_;
  s.resumed = resumed_;
  s.lost = lost_;
  std::lock_guard<std::mutex> g(mu_);
  s.queued = queue_.size();
  return s;
}

void DumpWriter::run() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // error stacks may be per thread
  // HDF5 keeps freed blocks on free lists of its own, unbounded by default.
  H5set_free_list_limits(1 << 20, 4 << 20, 1 << 20, 4 << 20, 1 << 20, 4 << 20);
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
  spdlog::error("job {}: results file: {} (values not yet on disk stay in the store; reopening in 30 s)", job, err.what());
  if (st.dump) {
    open_--;
    st.broken = std::move(st.dump);
  }
  st.retry_after_ns = now_ns() + 30'000'000'000LL;
}

// A job's dump as of everything the store holds. Values that have left the
// store (up to its dump mark, or what this writer synced itself) are only in
// the files: those are reopened and cut back to that mark. Otherwise the old
// files are replaced by a rebuild from the store. Called with no dump open.
bool DumpWriter::open_job(std::uint32_t job, const DumpOwner& owner, JobState& st) {
  if (st.broken) {
    if (auto s = st.broken->close(); !s) {
      fail(job, st, s.error());
      return false;
    }
    st.broken.reset();
  }
  auto path = dump_path(root_, pattern_, owner, job);
  if (!path) {
    fail(job, st, path.error());
    return false;
  }
  const std::int64_t upto = std::max(dumped_ ? dumped_(job) : 0, st.synced_seq);
  if (upto > 0) {
    auto resumed = JobDump::resume(*path, owner, job, upto);
    if (resumed) {
      st.dump = std::move(*resumed);
      resumed_++;
      spdlog::info("job {}: results file {} reopened with its {} records up to seq {}", job, *path,
                   st.dump->records(), upto);
    } else {
      lost_++;
      errors_++;
      std::error_code ec;
      fs::rename(*path, *path + ".damaged", ec);
      spdlog::error("job {}: its results file {} cannot be reopened ({}); the values up to seq {} had left the "
                    "store and are lost from the new file; the old one is kept as {}.damaged",
                    job, *path, resumed.error().what(), upto, *path);
    }
  }
  if (!st.dump) {
    JobDump::remove_files(*path);
    st.dump = std::make_unique<JobDump>(*path, owner, job);
  }
  open_++;
  st.incarnation = owner.incarnation;
  st.written_seq = st.synced_seq = upto;
  st.unsynced_from = 0;
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
    if (st.unsynced_from == 0) st.unsynced_from = page->front().seq;
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
  if (st.unsynced_from == 0) st.unsynced_from = fresh.front().seq;
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

// Every open dump with values since its last sync goes to disk; what it now
// holds is reported, so the store can let those values go.
void DumpWriter::sync_all() {
  std::vector<DumpSynced> done;
  for (auto& [job, st] : jobs_) {
    if (!st.dump || st.unsynced_from == 0) continue;
    if (auto s = st.dump->sync(); !s) {
      fail(job, st, s.error());
      continue;
    }
    syncs_++;
    done.push_back({job, st.incarnation, st.unsynced_from, st.written_seq});
    st.synced_seq = st.written_seq;
    st.unsynced_from = 0;
  }
  if (done.empty()) return;
  std::lock_guard<std::mutex> g(mu_);
  synced_.insert(synced_.end(), done.begin(), done.end());
}

void DumpWriter::finalise_job(Task& t, JobState& st) {
  DumpFinal out;
  out.job = t.job;
  out.reason = t.reason;
  out.incarnation = t.owner.incarnation;
  if (!st.dump && !open_job(t.job, t.owner, st)) {
    out.ok = false;
    out.error = "results file could not be rebuilt";
  } else {
    out.records = st.dump->records();
    out.last_step = st.dump->last_step();
    auto files = st.dump->finalise();  // fsyncs every file before its digest
    if (!files) {
      errors_++;
      out.ok = false;
      out.error = files.error().what();
      spdlog::error("job {}: finalising results: {}", t.job, out.error);
    } else {
      out.files = std::move(*files);
      out.from_seq = st.unsynced_from ? st.unsynced_from : st.written_seq;
      out.upto_seq = st.written_seq;
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
}

// The files this writer has open, or (a finished job) opened read-only for
// the occasion.
void DumpWriter::read_job(const Task& t) {
  DumpRead out;
  out.id = t.read_id;
  auto it = jobs_.find(t.job);
  if (it != jobs_.end() && it->second.dump) {
    out.values = it->second.dump->read(t.after_seq, t.limit);
  } else if (auto path = dump_path(root_, pattern_, t.owner, t.job); !path) {
    out.values = path.error();
  } else if (auto d = JobDump::open_read(*path, t.job); !d) {
    out.values = d.error();
  } else {
    out.values = (*d)->read(t.after_seq, t.limit);
  }
  std::lock_guard<std::mutex> g(mu_);
  reads_.push_back(std::move(out));
}

void DumpWriter::handle(Task& t) {
  if (t.kind == Task::Kind::read) return read_job(t);
  if (t.kind == Task::Kind::sync) return sync_all();
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
    case Task::Kind::finalise:
      return finalise_job(t, st);
    case Task::Kind::read:
    case Task::Kind::sync:
      return;
  }
}

}  // namespace vigil::controller
