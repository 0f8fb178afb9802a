# Inference-server benchmarks: gRPC echo limit vs `quiver serve`, dynamic batching gain.
if(TARGET quiver_serve)
  add_executable(serve_bench serve_bench.cpp)
  target_include_directories(serve_bench PRIVATE ${PROJECT_SOURCE_DIR}/src)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(CPPHTTPLIB_B REQUIRED IMPORTED_TARGET cpp-httplib)
  target_link_libraries(serve_bench PRIVATE quiver_serve quiver_backends quiver_proto quiver_core PkgConfig::CPPHTTPLIB_B)
  target_compile_definitions(serve_bench PRIVATE QUIVER_SHARED_DIR="${QUIVER_SHARED_DIR}")
endif()
