// The direct-inference backends of this build (ONNX engine, tree ensembles) and where a model runs.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver {

// Loads a model file with the backend that recognises it (`backend`: that one by name). The
// backends of this build (onnx, forest) are always known; register_backend() adds others (the
// client's "remote", plugins), which are asked first. Throws NotFound for a missing file or an
// unknown backend name, Unsupported when no backend recognises the file, and what the loader throws.
std::shared_ptr<const Model> load_model(const std::string& path, const LoadOptions& options = {},
                                        const std::string& backend = "");
// Adds a backend (or replaces the one of the same name). Thread-safe.
void register_backend(Backend b);
// Names of the added backends, then of the built-in ones.
std::vector<std::string> registered_backends();

}  // namespace quiver

namespace quiver::backends {

// The "onnx" backend of load_model. LoadOptions::params["device"] picks where the model runs: "cpu"
// (default: the ONNX engine, quiver::onnx::load_onnx), "cuda" or "cuda:N" (the GPU executor: the plan
// compiled for the device, each step's kernel chosen once at load, device kernels and cuBLAS; steps
// without a device kernel run their CPU kernel), "auto" (cuda:0 when a CUDA device is usable, else cpu)
// and "gpu-emulator" (the GPU executor on host memory, for tests on machines without a GPU).
// params["device_streams"] (default 4): how many runs of one loaded model may be on the device at
// once; each keeps its own stream and activation buffers, so this also bounds the GPU memory
// (callers beyond it wait). Throws InvalidArgument for an unknown device, Unavailable when it
// cannot be used, and whatever the ONNX loader throws.
std::shared_ptr<const Model> load_onnx(const std::string& path, const LoadOptions& options = {});
std::shared_ptr<const Model> load_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                             const LoadOptions& options = {});

}  // namespace quiver::backends
