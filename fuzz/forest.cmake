# Tree-ensemble parsers: build-fuzz/fuzz/fuzz_forest -max_total_time=60 fuzz/corpus/forest
if(TARGET quiver_forest)
  quiver_add_fuzzer(fuzz_forest ${CMAKE_CURRENT_LIST_DIR}/forest_fuzz.cpp quiver_forest quiver_core)
endif()
