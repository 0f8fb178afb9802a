# quiver_library(NAME SOURCES... [DEPS ...]) : a part of Quiver, exported as Quiver::NAME.
function(quiver_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} ${ARG_SOURCES})
  add_library(Quiver::${name} ALIAS ${name})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  set_property(GLOBAL APPEND PROPERTY QUIVER_EXPORT_TARGETS ${name})
endfunction()

# quiver_add_test(NAME SOURCES... LIBS ... [LABELS ...] [PROPERTIES name value...]) : one GoogleTest
# executable, tests discovered by CTest (PROPERTIES: further CTest properties of each test).
function(quiver_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    QUIVER_SHARED_DIR="${QUIVER_SHARED_DIR}"
    QUIVER_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    QUIVER_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${ARG_LABELS}" ${ARG_PROPERTIES})
endfunction()

# quiver_add_command_test(NAME COMMAND args... EXIT 0|nonzero OUTPUT regex [LABELS ...]) : runs a
# command and checks both its exit status and its output (stdout and stderr together). CTest's own
# PASS_REGULAR_EXPRESSION ignores the exit status and WILL_FAIL accepts any failure; this needs both.
function(quiver_add_command_test name)
  cmake_parse_arguments(ARG "" "EXIT;OUTPUT" "COMMAND;LABELS" ${ARGN})
  string(JOIN "|" cmd ${ARG_COMMAND})
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} "-DCMD=${cmd}" "-DEXIT=${ARG_EXIT}" "-DOUTPUT=${ARG_OUTPUT}"
           -P ${PROJECT_SOURCE_DIR}/cmake/expect_command.cmake)
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
endfunction()
