# Small helpers so component CMakeLists stay short.

# Warnings as errors on project code only; system headers stay quiet.
function(vigil_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                         -Wnon-virtual-dtor -Wno-missing-field-initializers -Werror)
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
