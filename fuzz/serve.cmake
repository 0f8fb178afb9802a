# Request decoding / validation of the inference server (gRPC ModelInferRequest and HTTP JSON +
# binary bodies). Needs the gRPC build (scripts/fuzz configures without it), e.g.:
#   CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz-serve -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#     -DQUIVER_FUZZ=ON -DQUIVER_WITH_GRPC=ON -DQUIVER_BUILD_TESTS=OFF -DQUIVER_BUILD_BENCH=OFF \
#     -DQUIVER_SANITIZE=address,undefined
#   ninja -C build-fuzz-serve fuzz_serve_request
#   cp -r fuzz/corpus/serve_request /tmp/c && build-fuzz-serve/fuzz/fuzz_serve_request -max_total_time=600 /tmp/c
# Seeds: fuzz/corpus/serve_request (first byte selects model / gRPC or HTTP / binary section, see
# serve_request_fuzz.cpp).
if(TARGET quiver_serve)
  # quiver_gpu: the harness exports emulated device memory (gpu::SharedDeviceMemory) for a CUDA region.
  # quiver_repository: the harness builds model versions through the server's internal headers.
  quiver_add_fuzzer(fuzz_serve_request serve_request_fuzz.cpp quiver_serve quiver_repository quiver_kserve quiver_gpu
                    quiver_proto quiver_core)
endif()
# Coverage feedback from the code under test (the request codec lives in libquiver_serve, the
# KServe tensor formats it decodes with in libquiver_kserve), not only from the harness: without
# this libFuzzer is blind inside decode_*/encode_* and the JSON parser.
if(TARGET quiver_serve AND TARGET fuzz_serve_request)
  target_compile_options(quiver_serve PRIVATE -fsanitize=fuzzer-no-link)
  target_compile_options(quiver_kserve PRIVATE -fsanitize=fuzzer-no-link)
endif()
