#include "quiver/backends/backends.hpp"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <vector>

#ifdef QUIVER_HAVE_ONNX
#include "gpu/device.hpp"
#include "quiver/onnx/onnx_model.hpp"
#endif
#ifdef QUIVER_HAVE_AOT
#include "quiver/aot/aot.hpp"
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
  // Reproducible numerics is a CPU mode: "auto" means the CPU there (an explicit GPU is refused by
  // the device loader with a clear error).
  auto num = c.options.params.find("numerics");
  const bool reproducible = num != c.options.params.end() && num->second == "reproducible";
  c.device = gpu::parse_device(reproducible && name == "auto" ? std::string("cpu") : name);
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

namespace {

// The backends of this build, listed where the registry is defined: loading needs no set-up call.
std::vector<Backend> builtin_backends() {
  std::vector<Backend> list;
#ifdef QUIVER_HAVE_ONNX
  Backend onnx;
  onnx.name = "onnx";
  onnx.accepts = [](const std::string& path, std::string_view) { return path.size() > 5 && path.ends_with(".onnx"); };
  onnx.load = [](const std::string& path, const LoadOptions& o) { return backends::load_onnx(path, o); };
  list.push_back(std::move(onnx));
#endif
#ifdef QUIVER_HAVE_AOT
  list.push_back(aot::backend());
#endif
#ifdef QUIVER_HAVE_FOREST
  list.push_back(forest::backend());
#endif
  return list;
}

struct Registry {
  std::mutex mu;
  std::vector<Backend> added;                        // register_backend(), asked first
  const std::vector<Backend> builtin = builtin_backends();
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_backend(Backend b) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (auto& x : r.added)
    if (x.name == b.name) {
      x = std::move(b);
      return;
    }
  r.added.push_back(std::move(b));
}

std::vector<std::string> registered_backends() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::vector<std::string> out;
  for (auto& x : r.added) out.push_back(x.name);
  for (auto& x : r.builtin)
    if (std::find(out.begin(), out.end(), x.name) == out.end()) out.push_back(x.name);
  return out;
}

std::shared_ptr<const Model> load_model(const std::string& path, const LoadOptions& options, const std::string& backend) {
  Registry& r = registry();
  std::vector<Backend> backends;
  {
    std::lock_guard lock(r.mu);
    backends = r.added;
  }
  backends.insert(backends.end(), r.builtin.begin(), r.builtin.end());
  std::string head;
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw_error(ErrorCode::NotFound, "cannot open model file", {"", "", "", path});
    head.resize(4096);
    f.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(f.gcount()));
  }
  for (const auto& b : backends) {
    if (!backend.empty() ? b.name == backend : b.accepts(path, head)) return b.load(path, options);
  }
  if (!backend.empty())
    throw_error(ErrorCode::NotFound, "no backend named '" + backend + "' is registered", {"", "", "", path});
  throw_error(ErrorCode::Unsupported, "no registered backend recognises this model file", {"", "", "", path});
}

}  // namespace quiver
