# Client benchmarks: overhead per async request vs raw gRPC, cross-event coalescing on the MLP,
# throughput scaling with servers. Starts `quiver serve` processes itself.
if(TARGET quiver_client AND TARGET quiver_serve)
  add_executable(client_bench client_bench.cpp)
  target_include_directories(client_bench PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(client_bench PRIVATE quiver_client quiver_kserve quiver_proto quiver_core onnx_proto)
  target_compile_definitions(client_bench PRIVATE
    QUIVER_BINARY_DIR="${PROJECT_BINARY_DIR}" QUIVER_SHARED_DIR="${QUIVER_SHARED_DIR}")
  add_dependencies(client_bench quiver)
endif()
