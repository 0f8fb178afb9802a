#include "quiver/client/local_repository.hpp"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <filesystem>

#include "model_config.pb.h"
#include "quiver/backends/backends.hpp"
#include "quiver/core/util.hpp"

namespace fs = std::filesystem;

namespace quiver::client {

namespace {

class IdentityModel : public Model {
 public:
  explicit IdentityModel(ModelInfo info) : info_(std::move(info)) {}
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState&) const override {
    validate_inputs(info_, inputs);
    outputs.resize(info_.outputs.size());
    for (size_t i = 0; i < info_.outputs.size(); ++i) {
      if (i >= inputs.size())
        throw Error(ErrorCode::InvalidArgument, "identity model has more outputs than inputs",
                    {.model = info_.name, .tensor = info_.outputs[i].name});
      outputs[i].ensure(inputs[i].dtype(), inputs[i].dims());
      outputs[i].copy_from(inputs[i]);
    }
  }

 private:
  ModelInfo info_;
};

Shape config_shape(const google::protobuf::RepeatedField<int64_t>& dims, bool batched) {
  Shape s;
  if (batched) s.push_back(Dim::sym("batch"));
  for (auto d : dims) s.push_back(d >= 0 ? Dim(d) : Dim());
  return s;
}

DType config_dtype(int t, const std::string& model, const std::string& tensor) {
  auto d = dtype_from_triton_config_name(inference::DataType_Name(static_cast<inference::DataType>(t)));
  if (!d) throw Error(ErrorCode::Unsupported, "unsupported data_type in config.pbtxt", {.model = model, .tensor = tensor});
  return *d;
}

}  // namespace

std::shared_ptr<const Model> make_identity_model(ModelInfo info) {
  info.backend = "identity";
  return std::make_shared<IdentityModel>(std::move(info));
}

LocalRepository::LocalRepository(std::string dir) : dir_(std::move(dir)) {
  if (!fs::is_directory(dir_))
    throw Error(ErrorCode::NotFound, "fallback model repository is not a directory", {.file = dir_});
  register_builtin_backends();
}

bool LocalRepository::has(const std::string& model) const {
  std::error_code ec;
  return !model.empty() && model.find('/') == std::string::npos && fs::is_directory(fs::path(dir_) / model, ec);
}

std::shared_ptr<const Model> LocalRepository::get(const std::string& model, const std::string& version) {
  return entry(model, version)->model;
}

std::shared_ptr<LocalRepository::Entry> LocalRepository::entry(const std::string& model, const std::string& version) {
  const std::string key = model + "\x1f" + version;
  std::lock_guard lk(mu_);
  if (auto it = loaded_.find(key); it != loaded_.end()) return it->second;
  if (!has(model))
    throw Error(ErrorCode::NotFound, "model not in the fallback repository", {.model = model, .file = dir_});
  fs::path mdir = fs::path(dir_) / model;
  inference::ModelConfig cfg;
  bool have_cfg = false;
  std::string text;
  if (fs::exists(mdir / "config.pbtxt")) {
    text = read_file((mdir / "config.pbtxt").string());
    if (!google::protobuf::TextFormat::ParseFromString(text, &cfg))
      throw Error(ErrorCode::Parse, "cannot parse config.pbtxt", {.model = model, .file = (mdir / "config.pbtxt").string()});
    have_cfg = true;
  }
  std::string v = version;
  if (v.empty()) {
    int64_t best = -1;
    for (auto& e : fs::directory_iterator(mdir)) {
      if (!e.is_directory()) continue;
      const std::string n = e.path().filename().string();
      if (n.empty() || !std::all_of(n.begin(), n.end(), ::isdigit)) continue;
      best = std::max<int64_t>(best, std::stoll(n));
    }
    if (best < 0) throw Error(ErrorCode::NotFound, "no version directory", {.model = model, .file = mdir.string()});
    v = std::to_string(best);
  }
  fs::path vdir = mdir / v;
  if (!fs::is_directory(vdir))
    throw Error(ErrorCode::NotFound, "model version not in the fallback repository", {.model = model, .file = vdir.string()});

  auto e = std::make_shared<Entry>();
  const bool batched = have_cfg && cfg.max_batch_size() > 0;
  if (have_cfg && cfg.backend() == "identity") {
    ModelInfo info;
    info.name = model;
    info.version = v;
    info.format = "config";
    info.sha256 = sha256_hex(text);  // as `quiver serve` reports an identity model: hash of its config
    info.max_batch = cfg.max_batch_size();
    for (auto& in : cfg.input())
      info.inputs.push_back({in.name(), config_dtype(in.data_type(), model, in.name()), config_shape(in.dims(), batched)});
    for (auto& out : cfg.output())
      info.outputs.push_back({out.name(), config_dtype(out.data_type(), model, out.name()), config_shape(out.dims(), batched)});
    e->model = make_identity_model(std::move(info));
  } else {
    fs::path file;
    if (have_cfg && !cfg.default_model_filename().empty()) file = vdir / cfg.default_model_filename();
    else if (fs::exists(vdir / "model.onnx")) file = vdir / "model.onnx";
    else {
      for (auto& f : fs::directory_iterator(vdir))
        if (f.is_regular_file() && f.path().filename().string().rfind("model", 0) == 0) { file = f.path(); break; }
    }
    if (file.empty() || !fs::exists(file))
      throw Error(ErrorCode::NotFound, "no model file in version directory", {.model = model, .file = vdir.string()});
    LoadOptions lo;
    lo.name = model;
    lo.version = v;
    e->model = load_model(file.string(), lo);
  }
  loaded_[key] = e;
  return e;
}

std::vector<NamedTensor> LocalRepository::run(const std::string& model, const std::string& version,
                                              const std::vector<NamedTensor>& inputs,
                                              std::vector<std::string> output_names) {
  auto e = entry(model, version);
  const ModelInfo& info = e->model->info();
  std::vector<Tensor> ordered(info.inputs.size());
  std::vector<bool> seen(info.inputs.size(), false);
  for (auto& in : inputs) {
    size_t i = e->model->input_index(in.name);  // throws NotFound naming the input
    ordered[i] = in.tensor;
    seen[i] = true;
  }
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i])
      throw Error(ErrorCode::InvalidArgument, "missing input", {.model = model, .tensor = info.inputs[i].name});
  std::unique_ptr<RunState> st;
  {
    std::lock_guard lk(e->mu);
    if (!e->free_states.empty()) {
      st = std::move(e->free_states.back());
      e->free_states.pop_back();
    }
  }
  if (!st) st = e->model->make_state();
  std::vector<Tensor> outs;
  e->model->run(ordered, outs, *st);
  {
    std::lock_guard lk(e->mu);
    e->free_states.push_back(std::move(st));
  }
  std::vector<NamedTensor> result;
  for (size_t i = 0; i < outs.size(); ++i) {
    const std::string& n = info.outputs[i].name;
    if (!output_names.empty() && std::find(output_names.begin(), output_names.end(), n) == output_names.end()) continue;
    result.push_back({n, std::move(outs[i])});
  }
  return result;
}

}  // namespace quiver::client
