// The aot backend: a library built from `quiver compile` output, loaded as a quiver::Model.
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>

#include "aot/abi.h"
#include "quiver/aot/aot.hpp"
#include "quiver/core/util.hpp"

namespace quiver::aot {
namespace {

// Where each symbolic dim is read from the inputs: (input, axis) of every occurrence.
struct DimUse {
  std::string name;
  int64_t max = -1;
  std::vector<std::pair<size_t, size_t>> at;
};

class AotState final : public RunState {
 public:
  std::vector<int64_t> dims;  // of the last call: the cached sizes below belong to them
  bool valid = false;
  size_t ws_bytes = 0;
  std::vector<std::vector<int64_t>> out_dims;
  std::unique_ptr<unsigned char[]> ws;
  size_t ws_cap = 0;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  std::vector<int> ranks;         // run_dims: the dims the outputs were written with
  std::vector<int64_t> run_dims;
  std::vector<Tensor> at_bound;   // data-dependent outputs as written (sized by their bound)
};

class AotModel final : public Model {
 public:
  AotModel(const quiver_aot_api* api, ModelInfo info, std::vector<DimUse> dims, nlohmann::json meta,
           std::vector<uint8_t> data_dims_out)
      : api_(api), info_(std::move(info)), dims_(std::move(dims)), meta_(std::move(meta)),
        data_dims_out_(std::move(data_dims_out)),
        data_dims_(std::find(data_dims_out_.begin(), data_dims_out_.end(), 1) != data_dims_out_.end()) {}
  // The library stays loaded for the process: code of a model may still be referenced by a thread
  // that outlives the Model (and unloading compiled code buys nothing).
  ~AotModel() override = default;

  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<AotState>(); }

  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const override {
    auto& st = dynamic_cast<AotState&>(state);
    validate_inputs(info_, inputs);
    std::vector<int64_t> dims(dims_.size());
    for (size_t k = 0; k < dims_.size(); ++k) {
      const auto& u = dims_[k];
      for (size_t j = 0; j < u.at.size(); ++j) {
        const auto [i, a] = u.at[j];
        const int64_t v = inputs[i].dims()[a];
        if (j == 0) dims[k] = v;
        else if (v != dims[k])
          throw_error(ErrorCode::InvalidArgument,
                      "dim '" + u.name + "' is " + std::to_string(dims[k]) + " in " + info_.inputs[u.at[0].first].name +
                          " but " + std::to_string(v) + " here",
                      {info_.name, "", info_.inputs[i].name});
      }
      if (u.max >= 0 && dims[k] > u.max)
        throw_error(ErrorCode::InvalidArgument,
                    "dim '" + u.name + "' is " + std::to_string(dims[k]) + ", above the compiled maximum " +
                        std::to_string(u.max),
                    {info_.name, "", info_.inputs[u.at[0].first].name});
    }
    char err[512] = {0};
    if (!st.valid || st.dims != dims) {
      st.valid = false;
      size_t bytes = 0;
      if (api_->workspace_bytes(dims.data(), &bytes, err, sizeof err) != 0)
        throw_error(ErrorCode::InvalidArgument, err, {info_.name});
      st.out_dims.assign(info_.outputs.size(), {});
      for (size_t k = 0; k < info_.outputs.size(); ++k) {
        int64_t od[8];
        int rank = 0;
        if (api_->output_dims(dims.data(), static_cast<int>(k), od, &rank, err, sizeof err) != 0)
          throw_error(ErrorCode::InvalidArgument, err, {info_.name});
        st.out_dims[k].assign(od, od + rank);
      }
      if (bytes > st.ws_cap) {
        st.ws.reset(new unsigned char[bytes]);
        st.ws_cap = bytes;
      }
      st.ws_bytes = bytes;
      st.dims = dims;
      st.valid = true;
    }
    outputs.resize(info_.outputs.size());
    st.in_ptrs.resize(inputs.size());
    st.out_ptrs.resize(outputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) st.in_ptrs[i] = inputs[i].raw();
    if (data_dims_) st.at_bound.resize(outputs.size());
    for (size_t k = 0; k < outputs.size(); ++k) {
      Tensor& t = data_dims_out_[k] ? st.at_bound[k] : outputs[k];
      t.ensure(info_.outputs[k].dtype, st.out_dims[k]);
      st.out_ptrs[k] = t.raw();
    }
    if (!data_dims_) {
      if (api_->run(dims.data(), st.in_ptrs.data(), st.out_ptrs.data(), st.ws.get(), st.ws_cap, err, sizeof err) != 0)
        throw_error(ErrorCode::InvalidArgument, err, {info_.name});
      return;
    }
    // Outputs whose dims depend on the data: written at the start of bound-sized buffers, then copied
    // out in the dims the library reports.
    st.ranks.resize(outputs.size());
    st.run_dims.resize(outputs.size() * QUIVER_AOT_MAX_RANK);
    if (api_->run_dims(dims.data(), st.in_ptrs.data(), st.out_ptrs.data(), st.ranks.data(), st.run_dims.data(), st.ws.get(),
                       st.ws_cap, err, sizeof err) != 0)
      throw_error(ErrorCode::InvalidArgument, err, {info_.name});
    for (size_t k = 0; k < outputs.size(); ++k) {
      if (!data_dims_out_[k]) continue;
      const std::span<const int64_t> d(st.run_dims.data() + k * QUIVER_AOT_MAX_RANK, static_cast<size_t>(st.ranks[k]));
      outputs[k].ensure(info_.outputs[k].dtype, d);
      if (outputs[k].nbytes() > st.at_bound[k].nbytes())
        throw_error(ErrorCode::Internal, "the library reports more elements than output_dims gave", {info_.name, "", info_.outputs[k].name});
      std::memcpy(outputs[k].raw(), st.at_bound[k].raw(), outputs[k].nbytes());
    }
  }

  void describe(std::ostream& os) const override {
    os << "compiled by:  quiver " << meta_.value("quiver_version", "?") << " (quiver compile, target "
       << meta_.value("target", "?") << ")\n"
       << "source model: " << meta_.value("model", "?") << " (" << meta_.value("format", "?") << ", sha256 "
       << meta_.value("source_sha256", "?") << ")\n"
       << "weights:      " << (meta_.value("weights", "source") == "file" ? "mapped from " + meta_.value("name", "?") + ".weights"
                                                                          : std::string("built into the library"))
       << "\n";
    std::string dd;
    for (const auto& o : meta_.at("outputs"))
      if (o.contains("data_dependent_axes")) dd += " " + o.value("name", "?") + o.at("data_dependent_axes").dump();
    if (!dd.empty()) os << "data-dependent output axes (run reports their dims):" << dd << "\n";
    if (!dims_.empty()) {
      os << "symbolic dims:";
      for (const auto& d : dims_) os << " " << d.name << (d.max >= 0 ? "<=" + std::to_string(d.max) : "");
      os << "\n";
    }
  }

 private:
  const quiver_aot_api* api_;
  ModelInfo info_;
  std::vector<DimUse> dims_;
  nlohmann::json meta_;
  std::vector<uint8_t> data_dims_out_;  // per output: its dims depend on the data (data_dependent_axes)
  bool data_dims_;                      // some do: run through run_dims
};

}  // namespace

std::shared_ptr<const Model> load_library(const std::string& path, const LoadOptions& options) {
  // RTLD_LOCAL: every compiled library exports quiver_aot_entry; each is looked up in its own handle.
  void* h = dlopen(std::filesystem::absolute(path).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    throw_error(ErrorCode::InvalidArgument, std::string("cannot load compiled model: ") + (e ? e : "?"), {"", "", "", path});
  }
  using Entry = const quiver_aot_api* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(h, "quiver_aot_entry"));
  if (!entry) {
    dlclose(h);
    throw_error(ErrorCode::InvalidArgument,
                "not a library built from quiver compile output (no quiver_aot_entry symbol)", {"", "", "", path});
  }
  const quiver_aot_api* api = entry();
  // ABI 1 (libraries from before --weights file) is ABI 2 without its last member, load_weights; ABI 2
  // is ABI 3 without run_dims.
  if (!api || api->abi_version < 1 || api->abi_version > QUIVER_AOT_ABI_VERSION) {
    dlclose(h);
    throw_error(ErrorCode::Unsupported,
                "compiled-model ABI " + std::to_string(api ? api->abi_version : -1) + " is not this Quiver's (1 to " +
                    std::to_string(QUIVER_AOT_ABI_VERSION) + ")",
                {"", "", "", path});
  }
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(api->info());
  } catch (const std::exception& e) {
    throw_error(ErrorCode::Parse, std::string("compiled model metadata: ") + e.what(), {"", "", "", path});
  }
  // Weights in a NAME.weights file (quiver compile --weights file): mapped and checked now, so that a
  // missing, truncated, corrupted or foreign file fails the load, naming the file, not the first run.
  const bool weights_file = meta.value("weights", "source") == "file";
  const auto wp = options.params.find("weights");
  if (wp != options.params.end() && !weights_file)
    throw_error(ErrorCode::InvalidArgument,
                "parameter weights=" + wp->second + ": this library has its weights built in (compiled with --weights source)",
                {"", "", "", path});
  if (weights_file) {
    char err[1024] = {0};
    if (api->abi_version < 2 || !api->load_weights)
      throw_error(ErrorCode::Unsupported, "the library declares a weights file but has no load_weights", {"", "", "", path});
    if (api->load_weights(wp == options.params.end() ? nullptr : wp->second.c_str(), err, sizeof err) != 0)
      throw_error(ErrorCode::InvalidArgument, err, {"", "", "", wp == options.params.end() ? path : wp->second});
  }
  ModelInfo info;
  info.name = options.name.empty() ? meta.value("name", "model") : options.name;
  info.backend = "aot";
  info.format = "aot";
  info.version = options.version;
  info.path = path;
  // The bytes that run, as the engine and the forests hash their model files and a repository its
  // entries: provenance (direct, fallback, served) names the same library everywhere. The source
  // model's hash is in the metadata block (inspect).
  info.sha256 = sha256_file(path);
  std::vector<DimUse> dims;
  for (const auto& d : meta.at("dims")) dims.push_back({d.at("name").get<std::string>(), d.value("max", int64_t{-1}), {}});
  auto tensors = [&](const nlohmann::json& arr, std::vector<TensorInfo>& out, bool inputs) {
    for (const auto& t : arr) {
      TensorInfo ti;
      ti.name = t.at("name").get<std::string>();
      auto dt = dtype_from_kserve(t.at("dtype").get<std::string>());
      if (!dt) throw_error(ErrorCode::Parse, "compiled model metadata: unknown dtype", {info.name, "", ti.name, path});
      ti.dtype = *dt;
      for (const auto& a : t.at("shape")) {
        if (a.is_number_integer()) { ti.shape.emplace_back(a.get<int64_t>()); continue; }
        const std::string s = a.get<std::string>();
        ti.shape.push_back(Dim::sym(s == "?" ? "" : s));
        if (!inputs) continue;
        for (auto& d : dims)
          if (d.name == s) d.at.emplace_back(out.size(), ti.shape.size() - 1);
      }
      out.push_back(std::move(ti));
    }
  };
  tensors(meta.at("inputs"), info.inputs, true);
  tensors(meta.at("outputs"), info.outputs, false);
  for (const auto& d : dims)
    if (d.at.empty())
      throw_error(ErrorCode::Parse, "compiled model metadata: dim '" + d.name + "' is used by no input", {info.name, "", "", path});
  std::vector<uint8_t> data_dims;
  for (const auto& o : meta.at("outputs")) data_dims.push_back(o.contains("data_dependent_axes") ? 1 : 0);
  if (std::count(data_dims.begin(), data_dims.end(), 1) && (api->abi_version < 3 || !api->run_dims))
    throw_error(ErrorCode::Unsupported, "compiled model metadata: data-dependent output dims but no run_dims", {info.name, "", "", path});
  return std::make_shared<AotModel>(api, std::move(info), std::move(dims), std::move(meta), std::move(data_dims));
}

Backend backend() {
  Backend b;
  b.name = "aot";
  b.accepts = [](const std::string& path, std::string_view head) {
    return path.size() > 3 && path.ends_with(".so") && head.size() >= 4 && std::memcmp(head.data(), "\x7f" "ELF", 4) == 0;
  };
  b.load = [](const std::string& path, const LoadOptions& o) { return load_library(path, o); };
  return b;
}

}  // namespace quiver::aot
