# Small helpers so component CMakeLists stay short.

# Warnings as errors on project code only; system headers stay quiet.
function(vigil_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                         -Wnon-virtual-dtor -Wno-missing-field-initializers -Werror)
  # GCC 13 and 14 (Debian 13 and sid, docker-slurm-cluster) report these from
  # library code inlined into ours (zmq.hpp's socket_t, seen with 14.2): they
  # stay warnings there, not errors.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 13)
    target_compile_options(${target} PRIVATE -Wno-error=maybe-uninitialized -Wno-error=dangling-reference)
  endif()
  if(VIGIL_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${VIGIL_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${VIGIL_SANITIZE})
  endif()
  if(VIGIL_COVERAGE)
    target_compile_options(${target} PRIVATE --coverage)  # linked: add_link_options in CMakeLists.txt
  endif()
endfunction()

# vigil_add_test(NAME SOURCES... [LIBS ...]) — one GoogleTest binary, registered with ctest.
function(vigil_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest_main)
  vigil_strict(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30)
endfunction()
