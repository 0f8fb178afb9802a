// Internal: the devices the GPU executor runs on, and loading an ONNX model onto one. The backend layer
// (src/backends) reads LoadOptions::params["device"] and calls these; the ONNX loader never does.
#pragma once
#include <memory>
#include <string>

#include "quiver/core/model.hpp"

namespace quiver::gpu {

struct DeviceSpec {
  enum Kind { Cpu, Cuda, Emulator } kind = Cpu;
  int index = 0;
  int streams = 4;  // concurrent runs per loaded model, each with its own stream and buffers
  std::string text() const;
};
// "cpu", "cuda", "cuda:N", "auto" (cuda:0 when a CUDA device is usable, else cpu), "gpu-emulator";
// throws InvalidArgument naming the choices.
DeviceSpec parse_device(const std::string& s);

// An ONNX model compiled for `dev`'s target and run by the GPU executor (dev.kind != Cpu). Throws
// quiver::Error like onnx::load_onnx, and Unavailable when the device cannot be used.
std::shared_ptr<const Model> load_onnx(const std::string& path, const LoadOptions& options, const DeviceSpec& dev);
std::shared_ptr<const Model> load_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                             const LoadOptions& options, const DeviceSpec& dev);

}  // namespace quiver::gpu
