// heat2d.cpp — a deterministic 2-D heat equation that reports through the Vigil
// SDK (C++ wrapper, vigil/sdk.hpp) and checkpoints so it can be restarted.
//
// The model: u_t = alpha (u_xx + u_yy) on the unit square, an N x N grid that
// includes the boundary (h = 1/(N-1)). Dirichlet boundary: row 0 (the top edge)
// is held at 1.0, the other edges at 0.0; the interior starts at 0.0. Explicit
// FTCS with the 5-point stencil and dt = 0.2 h^2 / alpha (stable: r = 0.2 < 0.25):
//
//     new = u + r * (up + down + left + right - 4 u),   r = alpha dt / h^2
//
// evaluated left to right, exactly in this order; heat2d.py does the same with
// numpy, so both produce bit-identical fields (this file is compiled with
// -ffp-contract=off so no fused multiply-add changes a rounding).
//
// Checkpoints (every --checkpoint-every steps, and at the next step boundary after
// Vigil's checkpoint signal: $VIGIL_CHECKPOINT_SIGNAL, default SIGUSR1, handled by
// the SDK) are DIR/heat2d-<step>.ckpt, written atomically (temporary file, fsync,
// rename, fsync of the directory). A checkpoint that cannot be written (a full
// disk, ...) is removed, reported to Vigil as failed, and the run goes on.
// Format, shared with heat2d.py and --out:
//     bytes 0..7   magic "VGHEAT1\0"
//     bytes 8..15  N     (int64, little-endian)
//     bytes 16..23 step  (int64, little-endian)
//     then N*N doubles (IEEE-754 binary64, little-endian), row-major, row 0 = top.
// On start it resumes from $VIGIL_RESTART_FROM if that names a valid checkpoint,
// else from the newest valid checkpoint in DIR (invalid ones are skipped with a
// message), so a restarted run ends bit-identical to an uninterrupted one.
//
// Usage: see usage() below. Outside a Vigil job the SDK calls are no-ops.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "vigil/sdk.hpp"

namespace {

namespace fs = std::filesystem;
namespace vs = vigil::sdk;

static_assert(std::endian::native == std::endian::little, "checkpoint doubles are written in native (little) order");
static_assert(std::numeric_limits<double>::is_iec559, "IEEE-754 doubles required");

constexpr char kMagic[8] = {'V', 'G', 'H', 'E', 'A', 'T', '1', '\0'};
constexpr std::size_t kHeaderBytes = 24;
constexpr double kAlpha = 1.0;

struct Options {
  std::int64_t n = 64;
  std::int64_t steps = 500;
  std::int64_t emit_every = 10;
  std::int64_t snapshot_every = 100;
  std::int64_t checkpoint_every = 0;  // 0: only on the checkpoint signal
  std::string checkpoint_dir = ".";
  std::int64_t attempt_dirs = 0;  // 1: write under DIR/attempt-$VIGIL_RESTART_COUNT (ADR 0022)
  std::int64_t sleep_ms = 0;
  std::int64_t nan_at = -1;  // -1: never
  bool writer = true;        // writes checkpoints (false on tasks other than 0)
  std::string stage;         // empty: the SDK default ("main")
  std::string out;
};

void usage(std::FILE* to) {
  std::fputs(
      "usage: heat2d [--n N] [--steps S] [--emit-every E] [--snapshot-every K]\n"
      "              [--checkpoint-every C] [--checkpoint-dir DIR] [--sleep-ms MS]\n"
      "              [--nan-at STEP] [--stage NAME] [--out FILE] [--attempt-dirs 0|1]\n"
      "  --n N                grid points per side, boundary included (default 64, >= 3)\n"
      "  --steps S            run until step S (default 500)\n"
      "  --emit-every E       emit total_heat, max_temp, residual, center_temp every E steps (10; 0: never)\n"
      "  --snapshot-every K   emit the field as the 2-D array 'temperature' every K steps (100; 0: never)\n"
      "  --checkpoint-every C write DIR/heat2d-<step>.ckpt every C steps (0: only on the\n"
      "                       checkpoint signal, $VIGIL_CHECKPOINT_SIGNAL or SIGUSR1)\n"
      "  --checkpoint-dir DIR where checkpoints are written and looked for on start (default .)\n"
      "  --attempt-dirs 1     write them in DIR/attempt-N (N: $VIGIL_RESTART_COUNT, else 0), so\n"
      "                       a superseded attempt still running somewhere cannot replace a\n"
      "                       file its successor relies on; start looks in DIR and every\n"
      "                       DIR/attempt-* (default 0)\n"
      "  --sleep-ms MS        sleep MS milliseconds after every step (default 0)\n"
      "  --nan-at STEP        make the field NaN at STEP (to test early signals)\n"
      "  --stage NAME         the Vigil stage the values belong to (default: main)\n"
      "  --out FILE           write the final field there (checkpoint format)\n"
      "Resumes from $VIGIL_RESTART_FROM or the newest valid checkpoint in DIR.\n",
      to);
}

bool parse_int(const char* text, std::int64_t min, std::int64_t& out) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min) return false;
  out = v;
  return true;
}

std::optional<Options> parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "heat2d: %s needs a value\n", argv[i]);
      return std::nullopt;
    }
    const char* v = argv[++i];
    bool ok = true;
    if (a == "--n") ok = parse_int(v, 3, o.n) && o.n <= 1 << 15;
    else if (a == "--steps") ok = parse_int(v, 0, o.steps);
    else if (a == "--emit-every") ok = parse_int(v, 0, o.emit_every);
    else if (a == "--snapshot-every") ok = parse_int(v, 0, o.snapshot_every);
    else if (a == "--checkpoint-every") ok = parse_int(v, 0, o.checkpoint_every);
    else if (a == "--checkpoint-dir") {
      o.checkpoint_dir = v;
      ok = !o.checkpoint_dir.empty();
    }
    else if (a == "--attempt-dirs") ok = parse_int(v, 0, o.attempt_dirs) && o.attempt_dirs <= 1;
    else if (a == "--sleep-ms") ok = parse_int(v, 0, o.sleep_ms);
    else if (a == "--nan-at") ok = parse_int(v, 1, o.nan_at);
    else if (a == "--stage") o.stage = v;
    else if (a == "--out") {
      o.out = v;
      ok = !o.out.empty();
    }
    else {
      std::fprintf(stderr, "heat2d: unknown option %s\n", argv[i - 1]);
      return std::nullopt;
    }
    if (!ok) {
      std::fprintf(stderr, "heat2d: bad value for %s: %s\n", argv[i - 1], v);
      return std::nullopt;
    }
  }
  return o;
}

// The grid, row-major, boundary included.
struct Field {
  std::int64_t n = 0;
  std::vector<double> u;
  double& at(std::int64_t i, std::int64_t j) { return u[static_cast<std::size_t>(i * n + j)]; }
  double at(std::int64_t i, std::int64_t j) const { return u[static_cast<std::size_t>(i * n + j)]; }
};

Field initial_field(std::int64_t n) {
  Field f{n, std::vector<double>(static_cast<std::size_t>(n * n), 0.0)};
  for (std::int64_t j = 0; j < n; ++j) f.at(0, j) = 1.0;  // the heated top edge
  return f;
}

// max that propagates NaN, like numpy's max: once a NaN is seen it stays.
inline void nan_max(double& acc, double v) {
  if (std::isnan(v) || v > acc) acc = v;
}

// One FTCS step from `u` into `next` (whose boundary already holds the boundary
// values). Returns the largest |change| of an interior point.
double step_once(const Field& u, Field& next, double r) {
  const std::int64_t n = u.n;
  double residual = 0.0;
  for (std::int64_t i = 1; i < n - 1; ++i) {
    for (std::int64_t j = 1; j < n - 1; ++j) {
      const double c = u.at(i, j);
      // The same association as numpy's `up + down + left + right - 4.0 * c`.
      const double lap = u.at(i - 1, j) + u.at(i + 1, j) + u.at(i, j - 1) + u.at(i, j + 1) - 4.0 * c;
      const double v = c + r * lap;
      next.at(i, j) = v;
      nan_max(residual, std::fabs(v - c));
    }
  }
  return residual;
}

struct Stats {
  double total_heat, max_temp, center_temp;
};

// Over the interior. The sum runs row by row, left to right (heat2d.py uses a
// sequential np.add.accumulate for the identical rounding).
Stats stats(const Field& f, double h) {
  const std::int64_t n = f.n;
  double sum = 0.0, mx = -std::numeric_limits<double>::infinity();
  for (std::int64_t i = 1; i < n - 1; ++i) {
    for (std::int64_t j = 1; j < n - 1; ++j) {
      sum += f.at(i, j);
      nan_max(mx, f.at(i, j));
    }
  }
  return {sum * h * h, mx, f.at(n / 2, n / 2)};
}

void put_i64(unsigned char* p, std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  for (int k = 0; k < 8; ++k) p[k] = static_cast<unsigned char>(u >> (8 * k));
}
std::int64_t get_i64(const unsigned char* p) {
  std::uint64_t u = 0;
  for (int k = 0; k < 8; ++k) u |= static_cast<std::uint64_t>(p[k]) << (8 * k);
  return static_cast<std::int64_t>(u);
}

bool write_all(int fd, const void* data, std::size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (len > 0) {
    const ssize_t w = ::write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    len -= static_cast<std::size_t>(w);
  }
  return true;
}

// Writes `f` at `step` to `path` atomically: a reader (or a restart after a crash)
// sees either the old state of `path` or the complete new file, never a part.
// Returns 0, or the errno of the call that failed (the temporary file is removed).
int write_state(const fs::path& path, const Field& f, std::int64_t step) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path tmp = dir / ("." + path.filename().string() + ".tmp." + std::to_string(::getpid()));
  unsigned char header[kHeaderBytes];
  std::memcpy(header, kMagic, 8);
  put_i64(header + 8, f.n);
  put_i64(header + 16, step);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  bool ok = write_all(fd, header, sizeof header) && write_all(fd, f.u.data(), f.u.size() * sizeof(double)) &&
            ::fsync(fd) == 0;
  int err = ok ? 0 : errno;
  // close can report a deferred write error (NFS, quotas): then the file is not good either.
  if (::close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());  // never leave a partial file behind
    return err != 0 ? err : EIO;
  }
  // Make the rename itself durable.
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return 0;
}

// Reads a checkpoint; on failure returns nullopt and says why in `why`.
std::optional<std::pair<Field, std::int64_t>> read_state(const fs::path& path, std::int64_t n, std::string& why) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) {
    why = std::strerror(errno);
    return std::nullopt;
  }
  unsigned char header[kHeaderBytes];
  Field f{n, std::vector<double>(static_cast<std::size_t>(n * n))};
  std::optional<std::pair<Field, std::int64_t>> result;
  if (std::fread(header, 1, sizeof header, fp) != sizeof header) {
    why = "truncated header";
  } else if (std::memcmp(header, kMagic, 8) != 0) {
    why = "not a heat2d checkpoint (bad magic)";
  } else if (get_i64(header + 8) != n) {
    why = "grid size " + std::to_string(get_i64(header + 8)) + " is not --n " + std::to_string(n);
  } else if (get_i64(header + 16) < 0) {
    why = "negative step";
  } else if (std::fread(f.u.data(), sizeof(double), f.u.size(), fp) != f.u.size()) {
    why = "truncated data";
  } else if (std::fgetc(fp) != EOF) {
    why = "trailing bytes";
  } else {
    result.emplace(std::move(f), get_i64(header + 16));
  }
  std::fclose(fp);
  return result;
}

fs::path checkpoint_path(const std::string& dir, std::int64_t step) {
  return fs::path(dir) / ("heat2d-" + std::to_string(step) + ".ckpt");
}

// The step in a name "heat2d-<step>.ckpt", or -1.
std::int64_t step_of(const std::string& name) {
  constexpr std::string_view prefix = "heat2d-", suffix = ".ckpt";
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix)) return -1;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) return -1;
  return std::stoll(digits);
}

// Where to start: $VIGIL_RESTART_FROM, else the newest valid checkpoint in the
// directory that is not beyond --steps, else the initial field at step 0.
std::pair<Field, std::int64_t> starting_state(const Options& o) {
  std::string why;
  if (const char* from = std::getenv("VIGIL_RESTART_FROM"); from && *from) {
    if (auto s = read_state(from, o.n, why); s && s->second <= o.steps) {
      std::fprintf(stderr, "heat2d: resuming from %s (step %lld)\n", from, static_cast<long long>(s->second));
      return std::move(*s);
    } else {
      std::fprintf(stderr, "heat2d: VIGIL_RESTART_FROM=%s unusable (%s); looking in %s\n", from,
                   s ? "beyond --steps" : why.c_str(), o.checkpoint_dir.c_str());
    }
  }
  std::vector<std::pair<std::int64_t, fs::path>> found;
  std::vector<fs::path> dirs{o.checkpoint_dir};
  std::error_code ec;
  for (fs::directory_iterator it(o.checkpoint_dir, ec), end; o.attempt_dirs && !ec && it != end; it.increment(ec))
    if (it->path().filename().string().starts_with("attempt-")) dirs.push_back(it->path());
  for (const fs::path& dir : dirs)
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (const std::int64_t s = step_of(it->path().filename().string()); s >= 0) found.emplace_back(s, it->path());
    }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [s, path] : found) {
    if (s > o.steps) continue;  // from a longer run: not the state this run asks for
    auto state = read_state(path, o.n, why);
    if (state && state->second != s) why = "header says step " + std::to_string(state->second);
    if (!state || state->second != s) {
      std::fprintf(stderr, "heat2d: skipping %s: %s\n", path.c_str(), why.c_str());
      continue;
    }
    std::fprintf(stderr, "heat2d: resuming from %s (step %lld)\n", path.c_str(), static_cast<long long>(s));
    return std::move(*state);
  }
  return {initial_field(o.n), 0};
}

std::string sha256_hex(const std::vector<double>& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, data.data(), data.size() * sizeof(double)) == 1 &&
                  EVP_DigestFinal_ex(ctx, md, &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return "unavailable";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    static constexpr char digits[] = "0123456789abcdef";
    hex += digits[md[i] >> 4];
    hex += digits[md[i] & 0xf];
  }
  return hex;
}

// A failed SDK call never stops the simulation: say so once per kind of call.
struct WarnOnce {
  const char* what;
  bool done = false;
  void operator()(int rc) {
    if (rc >= 0 || done) return;
    done = true;
    std::fprintf(stderr, "heat2d: vigil %s failed (code %d); continuing without it\n", what, rc);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = parse_args(argc, argv);
  if (!parsed) {
    usage(stderr);
    return 2;
  }
  Options o = *parsed;
  // Launched as several tasks (srun -n N), every task computes the same field
  // and task 0 alone reports and checkpoints: one writer, as in an SPMD code
  // whose rank 0 does the I/O. The others restart from the same checkpoint.
  if (const char* rank = std::getenv("SLURM_PROCID"); rank && std::string(rank) != "0") {
    o.emit_every = 0;
    o.snapshot_every = 0;
    o.checkpoint_every = 0;
    o.writer = false;
  }

  // Vigil's checkpoint signal (the job's --vigil-checkpoint-signal, or SIGUSR1,
  // also by hand) only sets a flag; the checkpoint is written at a step boundary.
  if (const int rc = vs::install_checkpoint_handler(); rc < 0)
    std::fprintf(stderr, "heat2d: cannot handle checkpoint signal %d (code %d); checkpoints only by %s\n",
                 vs::checkpoint_signal(), rc, "--checkpoint-every");

  vs::Session vigil;  // flushes (at most 2 s) when main returns
  if (!o.stage.empty() && vs::set_stage(o.stage) < 0)
    std::fprintf(stderr, "heat2d: --stage %s is not a valid Vigil name; using the default\n", o.stage.c_str());

  const std::int64_t n = o.n;
  const double h = 1.0 / static_cast<double>(n - 1);
  const double dt = 0.2 * h * h / kAlpha;
  const double r = kAlpha * dt / (h * h);  // written as in heat2d.py: the same rounding

  auto [u, step] = starting_state(o);
  Field next = u;  // boundary values carried over; interior overwritten every step
  double residual = 0.0;
  std::int64_t last_checkpoint = step;
  fs::path write_dir = o.checkpoint_dir;
  if (o.attempt_dirs) {
    const char* rc = std::getenv("VIGIL_RESTART_COUNT");
    write_dir /= "attempt-" + std::string(rc && *rc ? rc : "0");
    std::error_code ec;
    if (o.writer) fs::create_directories(write_dir, ec);  // a failure shows as failed checkpoints
  }
  WarnOnce emit_failed{"emit"}, array_failed{"emit_array (at most 65536 points)"}, report_failed{"report_checkpoint"},
      report_failure_failed{"report_checkpoint_failed"};

  while (step < o.steps) {
    residual = step_once(u, next, r);
    std::swap(u, next);
    ++step;
    if (step == o.nan_at) {
      for (std::int64_t i = 1; i < n - 1; ++i)
        for (std::int64_t j = 1; j < n - 1; ++j) u.at(i, j) = std::numeric_limits<double>::quiet_NaN();
      residual = std::numeric_limits<double>::quiet_NaN();
    }
    const double t = static_cast<double>(step) * dt;

    if (o.emit_every > 0 && step % o.emit_every == 0) {
      const Stats s = stats(u, h);
      emit_failed(vs::emit("total_heat", s.total_heat, step, t));
      emit_failed(vs::emit("max_temp", s.max_temp, step, t, "K"));
      emit_failed(vs::emit("residual", residual, step, t, "K"));
      emit_failed(vs::emit("center_temp", s.center_temp, step, t, "K"));
    }
    if (o.snapshot_every > 0 && step % o.snapshot_every == 0)
      array_failed(vs::emit_array("temperature", u.u, {n, n}, step, t, "K"));

    const bool asked = vs::should_checkpoint();  // read every step, on every task: clears the request
    if (o.writer && (asked || (o.checkpoint_every > 0 && step % o.checkpoint_every == 0)) && step != last_checkpoint) {
      // Reported with an absolute path: vigild records it for whoever restarts the job.
      std::error_code ec;
      fs::path path = checkpoint_path(write_dir, step);
      if (fs::path abs = fs::absolute(path, ec); !ec) path = abs;
      if (const int err = write_state(path, u, step); err == 0) {
        last_checkpoint = step;
        report_failed(vs::report_checkpoint(path.string(), step, t));
      } else {
        // A full disk must not cost the run: say so, tell Vigil, keep computing
        // (the next checkpoint is tried as usual).
        std::fprintf(stderr, "heat2d: cannot write checkpoint %s: %s; continuing\n", path.c_str(), std::strerror(err));
        report_failure_failed(vs::report_checkpoint_failed(path.string(), step, err));
      }
    }
    if (o.sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.sleep_ms));
  }

  if (!o.out.empty()) {
    if (const int err = write_state(o.out, u, step); err != 0) {
      std::fprintf(stderr, "heat2d: cannot write %s: %s\n", o.out.c_str(), std::strerror(err));
      return 1;
    }
  }
  const Stats s = stats(u, h);
  std::printf("heat2d: steps=%lld total_heat=%.17g sha256=%s\n", static_cast<long long>(step), s.total_heat,
              sha256_hex(u.u).c_str());
  std::fflush(stdout);
  return 0;
}
