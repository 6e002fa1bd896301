// vigil/sdk.hpp — a header-only C++20 wrapper over the C API in vigil/sdk.h.
//
//   #include <vigil/sdk.hpp>            // link -lvigil
//   int main() {
//     vigil::sdk::Session vigil;        // vigil_sdk_init(); finalize(2000) at scope exit
//     vigil::sdk::set_stage("production");
//     for (std::int64_t step = 1; step <= n; ++step) {
//       advance();
//       vigil::sdk::emit("energy", energy, step, t, "J");
//     }
//   }
//
// Nothing here throws or allocates: strings are copied into fixed buffers to get
// the NUL terminator the C API needs, and every function returns the C code
// (0, VIGIL_EINVAL, VIGIL_EINTERNAL). A string that cannot be passed faithfully
// (too long for its limit, or holding a NUL byte) is VIGIL_EINVAL and nothing is
// sent. Outside a Vigil job every call is a cheap no-op returning 0, exactly as
// in C. Thread-safe, like the C API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>

#include "vigil/sdk.h"

namespace vigil::sdk {

// The API version this header was compiled against; api_version() is the one of
// the library actually loaded (it may be newer; the v3 functions below need a v3
// library, the others a v2 one).
inline constexpr int header_api_version = VIGIL_SDK_API_VERSION;

namespace detail {

// A NUL-terminated copy of a string_view in a fixed buffer. `ok` is false when
// the text does not fit or contains a NUL (C would silently cut it there).
template <std::size_t Max>
struct CString {
  char buf[Max + 1];
  bool ok = false;

  explicit CString(std::string_view s) noexcept {
    if (s.size() > Max || s.find('\0') != std::string_view::npos) {
      buf[0] = '\0';
      return;
    }
    s.copy(buf, s.size());
    buf[s.size()] = '\0';
    ok = true;
  }
  const char* c_str() const noexcept { return buf; }
};

// Units are a label: the library keeps the first 32 bytes. Empty means "none" (NULL).
inline constexpr std::size_t kMaxUnits = 256;
// vigil_report_checkpoint refuses longer paths.
inline constexpr std::size_t kMaxPath = 4096;

}  // namespace detail

// Starts the SDK (vigil_sdk_init) and, when the session ends, flushes what is
// queued for at most `finalize_timeout_ms` and stops the sender thread. Make one
// near the top of main(). Non-copyable and non-movable: it stands for the
// process-wide SDK, so there is nothing to hand over.
class Session {
 public:
  explicit Session(int finalize_timeout_ms = 2000) noexcept
      : timeout_ms_(finalize_timeout_ms), init_rc_(vigil_sdk_init()) {}
  ~Session() { vigil_sdk_finalize(timeout_ms_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;

  // What vigil_sdk_init returned (0 also when not inside a Vigil job).
  int init_result() const noexcept { return init_rc_; }
  bool active() const noexcept { return vigil_sdk_active() != 0; }
  std::uint64_t dropped() const noexcept { return vigil_sdk_dropped(); }

 private:
  int timeout_ms_;
  int init_rc_;
};

// Free functions: usable with or without a Session (the C API initialises lazily).
inline int init() noexcept { return vigil_sdk_init(); }
inline void finalize(int timeout_ms = 2000) noexcept { vigil_sdk_finalize(timeout_ms); }
inline int api_version() noexcept { return vigil_sdk_api_version(); }
inline bool active() noexcept { return vigil_sdk_active() != 0; }
inline std::uint64_t dropped() noexcept { return vigil_sdk_dropped(); }

// The stage later values belong to (process-wide; default "main").
inline int set_stage(std::string_view stage) noexcept {
  const detail::CString<VIGIL_MAX_NAME> s(stage);
  return s.ok ? vigil_set_stage(s.c_str()) : VIGIL_EINVAL;
}

// A named scalar at a simulation step.
inline int emit(std::string_view name, double value, std::int64_t step, double sim_time,
                std::string_view units = {}) noexcept {
  const detail::CString<VIGIL_MAX_NAME> n(name);
  const detail::CString<detail::kMaxUnits> u(units);
  if (!n.ok || !u.ok) return VIGIL_EINVAL;
  return vigil_emit_scalar(n.c_str(), value, step, sim_time, units.empty() ? nullptr : u.c_str());
}

// A named n-dimensional array in C (row-major) order; `dims` gives its shape and
// the product of dims must equal data.size() (checked here, so the library never
// reads past the span). Limits: 1..VIGIL_MAX_DIMS dimensions, at most
// VIGIL_MAX_ARRAY_ELEMENTS elements. The data is copied before the call returns.
inline int emit_array(std::string_view name, std::span<const double> data, std::span<const std::int64_t> dims,
                      std::int64_t step, double sim_time, std::string_view units = {}) noexcept {
  if (dims.empty() || dims.size() > VIGIL_MAX_DIMS) return VIGIL_EINVAL;
  std::int64_t count = 1;
  for (const std::int64_t d : dims) {
    if (d < 1 || d > VIGIL_MAX_ARRAY_ELEMENTS) return VIGIL_EINVAL;
    count *= d;  // cannot overflow: at most VIGIL_MAX_DIMS factors of <= 2^16, stopped below
    if (count > VIGIL_MAX_ARRAY_ELEMENTS) return VIGIL_EINVAL;
  }
  if (static_cast<std::size_t>(count) != data.size()) return VIGIL_EINVAL;
  const detail::CString<VIGIL_MAX_NAME> n(name);
  const detail::CString<detail::kMaxUnits> u(units);
  if (!n.ok || !u.ok) return VIGIL_EINVAL;
  return vigil_emit_array(n.c_str(), data.data(), static_cast<int>(dims.size()), dims.data(), step, sim_time,
                          units.empty() ? nullptr : u.c_str());
}

// The same with the shape written inline: emit_array("field", v, {ny, nx}, step, t).
inline int emit_array(std::string_view name, std::span<const double> data, std::initializer_list<std::int64_t> dims,
                      std::int64_t step, double sim_time, std::string_view units = {}) noexcept {
  return emit_array(name, data, std::span<const std::int64_t>(dims.begin(), dims.size()), step, sim_time, units);
}

// A checkpoint the simulation has written and closed (report it after the rename).
inline int report_checkpoint(std::string_view path, std::int64_t step, double sim_time) noexcept {
  const detail::CString<detail::kMaxPath> p(path);
  if (!p.ok || path.empty()) return VIGIL_EINVAL;
  return vigil_report_checkpoint(p.c_str(), step, sim_time);
}

// (v3) A checkpoint write that failed (remove the partial file first, then carry
// on computing). `error_number` is the errno of the failed call, 0 if unknown.
inline int report_checkpoint_failed(std::string_view path, std::int64_t step, int error_number) noexcept {
  const detail::CString<detail::kMaxPath> p(path);
  if (!p.ok || path.empty()) return VIGIL_EINVAL;
  return vigil_report_checkpoint_failed(p.c_str(), step, error_number);
}

// (v3) A final output, registered once per name and content by vigild.
inline int report_output(std::string_view path, std::string_view name = {}, std::int64_t step = 0) noexcept {
  const detail::CString<detail::kMaxPath> p(path), n(name);
  if (!p.ok || !n.ok || path.empty()) return VIGIL_EINVAL;
  return vigil_report_output(p.c_str(), name.empty() ? nullptr : n.c_str(), step);
}

// (v3) Checkpoint requests: Vigil's checkpoint signal ($VIGIL_CHECKPOINT_SIGNAL,
// default SIGUSR1) sets a flag that should_checkpoint() reads and clears.
//   vigil::sdk::install_checkpoint_handler();   // once, early
//   ... every step: if (vigil::sdk::should_checkpoint()) write_checkpoint();
// Both work outside a Vigil job too.
inline int checkpoint_signal() noexcept { return vigil_checkpoint_signal(); }
inline int install_checkpoint_handler() noexcept { return vigil_install_checkpoint_handler(); }
inline bool should_checkpoint() noexcept { return vigil_should_checkpoint() != 0; }

}  // namespace vigil::sdk
