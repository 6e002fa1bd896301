// The C++ wrapper (vigil/sdk.hpp) over libvigil, outside a Vigil job: it passes
// valid values through (0), refuses what the C API cannot be given faithfully
// (VIGIL_EINVAL) without throwing, and its Session is a scope-bound singleton.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
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
