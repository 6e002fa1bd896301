// The C++ wrapper (vigil/sdk.hpp) over libvigil, outside a Vigil job: it passes
// valid values through (0), refuses what the C API cannot be given faithfully
// (VIGIL_EINVAL) without throwing, and its Session is a scope-bound singleton.
// Also the v3 C API: checkpoint requests by signal and failed-checkpoint reports.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "vigil/sdk.hpp"

namespace vs = vigil::sdk;

namespace {
// Not inside a job, whatever the environment ctest runs in: the SDK then never
// starts its sender thread and every valid call is a no-op returning 0.
const bool kOutsideJob = [] {
  ::unsetenv("VIGIL_ENDPOINT");
  ::unsetenv("VIGIL_JOB_ID");
  return true;
}();
}  // namespace

static_assert(!std::is_copy_constructible_v<vs::Session> && !std::is_copy_assignable_v<vs::Session>);
static_assert(!std::is_move_constructible_v<vs::Session>);
static_assert(std::is_nothrow_constructible_v<vs::Session>);
static_assert(noexcept(vs::emit("x", 1.0, 1, 0.1)));
static_assert(noexcept(vs::set_stage("x")));
static_assert(noexcept(vs::report_checkpoint("/x", 1, 0.1)));
static_assert(noexcept(vs::report_checkpoint_failed("/x", 1, ENOSPC)));
static_assert(noexcept(vs::checkpoint_signal()) && noexcept(vs::install_checkpoint_handler()));
static_assert(std::is_same_v<decltype(vs::should_checkpoint()), bool> && noexcept(vs::should_checkpoint()));
static_assert(VIGIL_SDK_API_VERSION == 3);
static_assert(vs::header_api_version == VIGIL_SDK_API_VERSION);

TEST(SdkHpp, OutsideAJobEverythingIsANoOp) {
  ASSERT_TRUE(kOutsideJob);
  vs::Session session(100);
  EXPECT_EQ(session.init_result(), 0);
  EXPECT_FALSE(session.active());
  EXPECT_FALSE(vs::active());
  EXPECT_EQ(vs::api_version(), VIGIL_SDK_API_VERSION);
  EXPECT_EQ(vs::set_stage("equilibration"), 0);
  EXPECT_EQ(vs::emit("energy", -1.5, 1, 0.1, "J"), 0);
  EXPECT_EQ(vs::emit("energy", 2.0, 2, 0.2), 0);
  const std::vector<double> field(6, 0.5);
  EXPECT_EQ(vs::emit_array("field", field, {2, 3}, 3, 0.3, "K"), 0);
  const std::vector<std::int64_t> dims{6};
  EXPECT_EQ(vs::emit_array("line", field, dims, 3, 0.3), 0);
  EXPECT_EQ(vs::report_checkpoint("/tmp/ckpt-3", 3, 0.3), 0);
  EXPECT_EQ(vs::dropped(), 0u);
  EXPECT_EQ(vs::set_stage("main"), 0);
}

TEST(SdkHpp, BadNamesAreRefused) {
  EXPECT_EQ(vs::emit("a/b", 1.0, 0, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::emit("", 1.0, 0, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::emit("..", 1.0, 0, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::emit(std::string(VIGIL_MAX_NAME, 'x'), 1.0, 0, 0.0), 0);
  EXPECT_EQ(vs::emit(std::string(VIGIL_MAX_NAME + 1, 'x'), 1.0, 0, 0.0), VIGIL_EINVAL);
  // A NUL inside the view would silently shorten the name in C: refused instead.
  EXPECT_EQ(vs::emit(std::string_view("ab\0cd", 5), 1.0, 0, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::emit("ok", 1.0, 0, 0.0, std::string_view("K\0x", 3)), VIGIL_EINVAL);
  EXPECT_EQ(vs::set_stage("prod uction"), VIGIL_EINVAL);
  // A view that is not NUL-terminated is copied, not read past its end.
  const char raw[] = {'e', 'n', 'e', 'r', 'g', 'y', '/'};
  EXPECT_EQ(vs::emit(std::string_view(raw, 6), 1.0, 0, 0.0), 0);
}

TEST(SdkHpp, BadArraysAreRefused) {
  const std::vector<double> six(6, 1.0);
  EXPECT_EQ(vs::emit_array("f", six, {2, 2}, 0, 0.0), VIGIL_EINVAL);  // shape does not match the data
  EXPECT_EQ(vs::emit_array("f", six, {2, 4}, 0, 0.0), VIGIL_EINVAL);  // would read past the span
  EXPECT_EQ(vs::emit_array("f", six, {6, 0}, 0, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::emit_array("f", six, {1, 1, 1, 1, 6}, 0, 0.0), VIGIL_EINVAL);  // 5-D
  EXPECT_EQ(vs::emit_array("f", six, std::span<const std::int64_t>{}, 0, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::emit_array("f", six, {1, 1, 1, 6}, 0, 0.0), 0);  // 4-D is the limit
  const std::vector<double> big(VIGIL_MAX_ARRAY_ELEMENTS + 1, 0.0);
  EXPECT_EQ(vs::emit_array("f", big, {static_cast<std::int64_t>(big.size())}, 0, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::emit_array("f", std::span<const double>(big).first(VIGIL_MAX_ARRAY_ELEMENTS), {256, 256}, 0, 0.0),
            0);
  // Huge dims must not overflow the element count into something "valid".
  EXPECT_EQ(vs::emit_array("f", six, {1LL << 62, 1LL << 62, 6}, 0, 0.0), VIGIL_EINVAL);
}

TEST(SdkHpp, BadCheckpointPathsAreRefused) {
  EXPECT_EQ(vs::report_checkpoint("", 1, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::report_checkpoint(std::string(5000, 'p'), 1, 0.0), VIGIL_EINVAL);
  EXPECT_EQ(vs::report_checkpoint(std::string("/a\0b", 4), 1, 0.0), VIGIL_EINVAL);
}

// --- v3: failed checkpoints ---

TEST(SdkCheckpointFailed, OutsideAJobIsANoOp) {
  ASSERT_TRUE(kOutsideJob);
  EXPECT_EQ(vigil_report_checkpoint_failed("/tmp/ckpt-4", 4, ENOSPC), 0);
  EXPECT_EQ(vigil_report_checkpoint_failed("/tmp/ckpt-4", 4, 0), 0);  // 0: cause unknown
  EXPECT_EQ(vs::report_checkpoint_failed("/tmp/ckpt-5", 5, EIO), 0);
  EXPECT_EQ(vigil_report_checkpoint_failed(std::string(4096, 'p').c_str(), 1, ENOSPC), 0);
  EXPECT_EQ(vs::dropped(), 0u);
  EXPECT_FALSE(vs::active());
}

TEST(SdkOutput, OutsideAJobANoOpAndBadArgumentsAreRefused) {
  EXPECT_EQ(vigil_report_output("/tmp/result.h5", "result", 10), 0);
  EXPECT_EQ(vigil_report_output("/tmp/result.h5", nullptr, 10), 0);  // registered under its path
  EXPECT_EQ(vs::report_output("/tmp/result.h5"), 0);
  EXPECT_EQ(vigil_report_output(nullptr, "r", 1), VIGIL_EINVAL);
  EXPECT_EQ(vigil_report_output("", "r", 1), VIGIL_EINVAL);
  EXPECT_EQ(vigil_report_output("/tmp/r", std::string(4097, 'n').c_str(), 1), VIGIL_EINVAL);
  EXPECT_EQ(vs::report_output("", "r"), VIGIL_EINVAL);
  EXPECT_EQ(vs::report_output("/tmp/r", std::string(5000, 'n')), VIGIL_EINVAL);
}

TEST(SdkCheckpointFailed, BadArgumentsAreRefused) {
  // The same path rules as vigil_report_checkpoint, and a real errno.
  EXPECT_EQ(vigil_report_checkpoint_failed(nullptr, 1, ENOSPC), VIGIL_EINVAL);
  EXPECT_EQ(vigil_report_checkpoint_failed("", 1, ENOSPC), VIGIL_EINVAL);
  EXPECT_EQ(vigil_report_checkpoint_failed(std::string(4097, 'p').c_str(), 1, ENOSPC), VIGIL_EINVAL);
  EXPECT_EQ(vigil_report_checkpoint_failed("/tmp/ckpt", 1, -ENOSPC), VIGIL_EINVAL);
  EXPECT_EQ(vs::report_checkpoint_failed("", 1, ENOSPC), VIGIL_EINVAL);
  EXPECT_EQ(vs::report_checkpoint_failed(std::string(5000, 'p'), 1, ENOSPC), VIGIL_EINVAL);
  EXPECT_EQ(vs::report_checkpoint_failed(std::string("/a\0b", 4), 1, ENOSPC), VIGIL_EINVAL);
}

// --- v3: checkpoint requests. VIGIL_CHECKPOINT_SIGNAL is read on every call, so
// each test sets it; ctest runs each test in its own process anyway. ---

namespace {
void set_signal_env(const char* value) {
  if (value) ::setenv("VIGIL_CHECKPOINT_SIGNAL", value, 1);
  else ::unsetenv("VIGIL_CHECKPOINT_SIGNAL");
}
}  // namespace

TEST(SdkCheckpointSignal, DefaultIsSigusr1) {
  set_signal_env(nullptr);
  EXPECT_EQ(vigil_checkpoint_signal(), SIGUSR1);
  EXPECT_EQ(vs::checkpoint_signal(), SIGUSR1);  // outside a job too
}

TEST(SdkCheckpointSignal, EnvironmentIsHonoured) {
  for (const auto& [text, sig] : {std::pair{"12", SIGUSR2}, {"15", SIGTERM}, {"012", 12}, {"1", 1}, {"64", 64}}) {
    set_signal_env(text);
    EXPECT_EQ(vigil_checkpoint_signal(), sig) << text;
  }
  set_signal_env(nullptr);
}

TEST(SdkCheckpointSignal, InvalidValuesFallBackToSigusr1) {
  // Not plain decimal digits, not a signal, or one no process can catch.
  for (const char* text : {"", "USR2", "SIGUSR2", " 12", "12 ", "+12", "-12", "0x0c", "1e1", "0", "9", "19", "65",
                           "99999999999999999999999"}) {
    set_signal_env(text);
    EXPECT_EQ(vigil_checkpoint_signal(), SIGUSR1) << '"' << text << '"';
  }
  set_signal_env(nullptr);
}

TEST(SdkCheckpointHandler, ConfiguredSignalIsSeenOncePerRequest) {
  set_signal_env("12");
  ASSERT_EQ(vs::install_checkpoint_handler(), 0);
  EXPECT_EQ(vigil_install_checkpoint_handler(), 0);  // idempotent
  struct sigaction now {};
  ASSERT_EQ(::sigaction(SIGUSR2, nullptr, &now), 0);
  EXPECT_NE(now.sa_handler, SIG_DFL);
  EXPECT_NE(now.sa_flags & SA_RESTART, 0);
  EXPECT_FALSE(vs::should_checkpoint());

  ASSERT_EQ(std::raise(SIGUSR2), 0);
  EXPECT_TRUE(vs::should_checkpoint());
  EXPECT_FALSE(vs::should_checkpoint());  // test-and-clear
  EXPECT_EQ(vigil_should_checkpoint(), 0);

  // Two requests before a check are one checkpoint.
  ASSERT_EQ(std::raise(SIGUSR2), 0);
  ASSERT_EQ(std::raise(SIGUSR2), 0);
  EXPECT_EQ(vigil_should_checkpoint(), 1);
  EXPECT_EQ(vigil_should_checkpoint(), 0);

  // Re-installing keeps a pending request.
  ASSERT_EQ(std::raise(SIGUSR2), 0);
  EXPECT_EQ(vs::install_checkpoint_handler(), 0);
  EXPECT_TRUE(vs::should_checkpoint());
  set_signal_env(nullptr);
}

TEST(SdkCheckpointHandler, DefaultSignalFromAnotherThread) {
  set_signal_env(nullptr);
  ASSERT_EQ(vs::install_checkpoint_handler(), 0);
  (void)vs::should_checkpoint();
  std::thread([] { ::kill(::getpid(), SIGUSR1); }).join();  // to the process: any thread may take it
  // kill() to our own process delivers before it returns to some thread, but
  // not necessarily to this one: wait a little for the handler to have run.
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {
    seen = vs::should_checkpoint();
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(seen);
  EXPECT_FALSE(vs::should_checkpoint());
}

TEST(SdkCheckpointHandler, SignalTheSystemRefusesIsAnError) {
  // 32 passes the plugin's check (1..64) but glibc keeps it for threads: sigaction refuses it.
  set_signal_env("32");
  EXPECT_EQ(vs::checkpoint_signal(), 32);
  EXPECT_EQ(vs::install_checkpoint_handler(), VIGIL_EINVAL);
  set_signal_env(nullptr);
}
