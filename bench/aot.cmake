# quiver compile: the RSS a process gains by loading a model and running it once (engine or a
# compiled library, both through quiver::load_model). bench/aot_compare.js drives it.
if(TARGET quiver_aot AND TARGET quiver_backends)
  add_executable(aot_memory ${CMAKE_CURRENT_LIST_DIR}/aot_memory.cpp)
  target_link_libraries(aot_memory PRIVATE quiver_backends quiver_onnx quiver_core)
endif()
