#include "quiver/backends/backends.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <vector>

#include "quiver/core/util.hpp"

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

// ---------------------------------------------------------------- sizing states ahead

size_t state_bytes(const RunState& state) {
#ifdef QUIVER_HAVE_ONNX
  return onnx::state_arena_bytes(state);
#else
  (void)state;
  return 0;
#endif
}

std::string PrepareReport::summary() const {
  char buf[160];
  std::string s;
  if (spec.batch > 0) {
    std::snprintf(buf, sizeof buf, "%zu state(s) prepared at %s (%s): %.1f MiB in %.1f ms", states, spec.str().c_str(),
                  configured ? "prepare_state" : "default", static_cast<double>(bytes) / 1048576.0, ms);
    s = buf;
  } else {
    s = configured ? "states not prepared (prepare_state off)" : "states not prepared";
  }
  if (!note.empty()) s += "; " + note;
  return s;
}

PrepareReport prepare_states(const Model& model, std::span<RunState* const> states, const std::string& configured,
                             const PrepareSpec& automatic, const ErrorWhere& where, int64_t max_batch) {
  PrepareReport r;
  r.states = states.size();
  const ModelInfo& info = model.info();
  const int64_t t0 = now_ns();
  if (!configured.empty()) {
    r.configured = true;
    r.spec = parse_prepare_spec(configured, where);
    if (r.spec.batch > 0) {
      try {
        check_prepare_spec(info, r.spec, max_batch);
        for (RunState* st : states) prepare_state(model, *st, r.spec.batch, r.spec.dims);
      } catch (const Error& e) {
        // The caller's names (the served model, the parameter) first, then the input it concerns.
        ErrorWhere w = where;
        if (w.model.empty()) w.model = e.where().model;
        w.tensor = e.where().tensor;
        throw Error(e.code(), "preparing states at '" + r.spec.str() + "': " + e.message(), w);
      }
    }
  } else if (automatic.batch > 0 && !states.empty() && !(info.backend == "onnx" && info.device.empty())) {
    // Other backends' states hold no arena that grows with the batch (or do not report it): a
    // default run there would cost load time (an identity model's delay) for nothing to size.
    r.note = "automatic sizing is for the ONNX engine on the CPU (this model: " + info.backend +
             (info.device.empty() ? "" : " on " + info.device) + "); a prepare spec sizes any model";
  } else if (automatic.batch > 0 && !states.empty()) {
    PrepareSpec s = automatic;
    if (max_batch <= 0) max_batch = info.max_batch;
    if (max_batch > 0) s.batch = std::min(s.batch, max_batch);
    try {
      check_prepare_spec(info, s, max_batch);
      if (s.batch > 1) {  // estimate one state's bytes from batch 1 before going bigger
        prepare_state(model, *states[0], 1, s.dims);
        const size_t one = state_bytes(*states[0]);
        if (one > 0 && one * static_cast<size_t>(s.batch) > kAutoPrepareMaxBytes) {
          const int64_t fit = std::max<int64_t>(1, static_cast<int64_t>(kAutoPrepareMaxBytes / one));
          char buf[200];
          std::snprintf(buf, sizeof buf,
                        "default batch %lld cut to %lld: one state would take ~%.0f MiB (automatic sizing stays "
                        "within %zu MiB; a prepare spec sets any size)",
                        static_cast<long long>(s.batch), static_cast<long long>(fit),
                        static_cast<double>(one) * static_cast<double>(s.batch) / 1048576.0, kAutoPrepareMaxBytes >> 20);
          r.note = buf;
          s.batch = fit;
        }
      }
      for (RunState* st : states) prepare_state(model, *st, s.batch, s.dims);
      r.spec = s;
    } catch (const std::exception& e) {
      r.spec = {};
      r.note = std::string("the default sizing at batch ") + std::to_string(s.batch) + " failed: " + e.what();
    }
  }
  for (RunState* st : states) r.bytes += state_bytes(*st);
  r.ms = static_cast<double>(now_ns() - t0) / 1e6;
  return r;
}

PreparedStates make_prepared_states(const Model& model, int n, const std::string& configured,
                                    const PrepareSpec& automatic, const ErrorWhere& where, int64_t max_batch) {
  PreparedStates p;
  std::vector<RunState*> raw;
  for (int k = 0; k < std::max(1, n); ++k) {
    p.states.push_back(model.make_state());
    raw.push_back(p.states.back().get());
  }
  p.report = prepare_states(model, raw, configured, automatic, where, max_batch);
  return p;
}

}  // namespace quiver
