# Event framework benchmarks (docs/benchmarks.md, "Event framework").
if(TARGET quiver_flow)
  add_executable(bench_flow ${CMAKE_CURRENT_LIST_DIR}/flow_bench.cpp)
  target_link_libraries(bench_flow PRIVATE quiver_flow quiver_core)
  target_compile_definitions(bench_flow PRIVATE QUIVER_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
