# Request decoding / validation of the inference server (gRPC ModelInferRequest and HTTP JSON +
# binary bodies). Needs the gRPC build: configure with -DQUIVER_WITH_GRPC=ON.
#   ninja -C build-fuzz fuzz_serve_request && build-fuzz/fuzz/fuzz_serve_request -max_total_time=60
if(TARGET quiver_serve)
  quiver_add_fuzzer(fuzz_serve_request serve_request_fuzz.cpp quiver_serve quiver_proto quiver_core)
endif()
