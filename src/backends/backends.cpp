#include "quiver/backends/backends.hpp"

#include <mutex>

#ifdef QUIVER_HAVE_ONNX
#include "gpu/device.hpp"
#include "quiver/onnx/onnx_model.hpp"
#endif
#ifdef QUIVER_HAVE_FOREST
#include "quiver/forest/forest.hpp"
#endif

namespace quiver {

#ifdef QUIVER_HAVE_ONNX
namespace backends {
namespace {

// The one place that reads params["device"] / ["device_streams"]: the device to run on, and the options
// the loader gets without them.
struct DeviceChoice {
  gpu::DeviceSpec device;
  LoadOptions options;
};

DeviceChoice choose_device(const LoadOptions& options) {
  DeviceChoice c;
  c.options = options;
  auto dev = c.options.params.find("device");
  const std::string name = dev == c.options.params.end() ? "cpu" : dev->second;
  if (dev != c.options.params.end()) c.options.params.erase(dev);
  int streams = 4;
  if (auto it = c.options.params.find("device_streams"); it != c.options.params.end()) {
    const std::string v = it->second;
    if (v.empty() || v.size() > 3 || v.find_first_not_of("0123456789") != std::string::npos || std::stoi(v) < 1)
      throw_error(ErrorCode::InvalidArgument, "device_streams must be a number from 1 to 999, got '" + v + "'",
                  {options.name});
    streams = std::stoi(v);
    c.options.params.erase(it);
  }
  c.device = gpu::parse_device(name);
  c.device.streams = streams;
  return c;
}

}  // namespace

std::shared_ptr<const Model> load_onnx(const std::string& path, const LoadOptions& options) {
  DeviceChoice c = choose_device(options);
  if (c.device.kind != gpu::DeviceSpec::Cpu) return gpu::load_onnx(path, c.options, c.device);
  return onnx::load_onnx(path, c.options);
}

std::shared_ptr<const Model> load_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                             const LoadOptions& options) {
  DeviceChoice c = choose_device(options);
  if (c.device.kind != gpu::DeviceSpec::Cpu) return gpu::load_onnx_bytes(bytes, base_dir, c.options, c.device);
  return onnx::load_onnx_bytes(bytes, base_dir, c.options);
}

}  // namespace backends
#endif

void register_builtin_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef QUIVER_HAVE_ONNX
    Backend onnx;
    onnx.name = "onnx";
    onnx.accepts = [](const std::string& path, std::string_view) { return path.size() > 5 && path.ends_with(".onnx"); };
    onnx.load = [](const std::string& path, const LoadOptions& o) { return backends::load_onnx(path, o); };
    register_backend(std::move(onnx));
#endif
#ifdef QUIVER_HAVE_FOREST
    forest::register_backend();
#endif
  });
}

}  // namespace quiver
