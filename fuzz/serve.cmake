# Request decoding / validation of the inference server (gRPC ModelInferRequest and HTTP JSON +
# binary bodies) and the round trip through the identity model (gRPC build; scripts/fuzz has it).
# Seeds: fuzz/corpus/serve_request (first byte selects model / gRPC or HTTP / binary section, see
# serve_request_fuzz.cpp; also an Accept-Encoding header or a scheduler script: the response
# encoding chosen and equal statistics counts in every snapshot, what Triton's clients rely on,
# issue 14). Coverage instrumentation of quiver_serve and quiver_kserve (the codec and the KServe
# tensor formats): fuzz/CMakeLists.txt.
if(TARGET quiver_serve AND TARGET quiver_kserve)
  # quiver_gpu: the harness exports emulated device memory (gpu::SharedDeviceMemory) for a CUDA
  # region; quiver_repository: model versions through the server's internal headers; quiver_kserve:
  # the client's reader of responses.
  quiver_add_fuzzer(fuzz_serve_request serve_request_fuzz.cpp quiver_serve quiver_repository quiver_kserve quiver_gpu
                    quiver_onnx quiver_proto quiver_core nlohmann_json::nlohmann_json)
endif()
