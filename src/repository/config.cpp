// config.pbtxt parsing (protobuf TextFormat), engine / file-name mapping, auto-complete from the
// model, version policy and scheduler options.
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <climits>
#include <chrono>
#include <filesystem>
#include <thread>

#include "repository/loader.hpp"

namespace fs = std::filesystem;

namespace quiver::repository {

namespace {
class Collector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber col, const std::string& msg) override {
    if (first_line < 0) {
      first_line = line + 1;
      first = "line " + std::to_string(line + 1) + " column " + std::to_string(col + 1) + ": " + msg;
    }
  }
  int first_line = -1;
  std::string first;
};
}  // namespace

inference::ModelConfig parse_model_config(const std::string& text, const std::string& file) {
  inference::ModelConfig c;
  google::protobuf::TextFormat::Parser parser;
  Collector col;
  parser.RecordErrorsTo(&col);
  if (!parser.ParseFromString(text, &c)) {
    ErrorWhere w;
    w.file = file;
    w.offset = col.first_line;
    throw Error(ErrorCode::Parse, "invalid model configuration: " + (col.first.empty() ? "parse error" : col.first), w);
  }
  return c;
}

std::string model_config_to_text(const inference::ModelConfig& c) {
  std::string s;
  google::protobuf::TextFormat::PrintToString(c, &s);
  return s;
}

std::optional<DType> config_dtype(int data_type) {
  if (!inference::DataType_IsValid(data_type)) return std::nullopt;
  return dtype_from_triton_config_name(inference::DataType_Name(static_cast<inference::DataType>(data_type)));
}

int to_config_dtype(DType t) {
  inference::DataType d = inference::TYPE_INVALID;
  auto name = dtype_triton_config_name(t);
  if (!inference::DataType_Parse(std::string(name), &d)) return inference::TYPE_INVALID;
  return d;
}

std::string engine_for_config(const inference::ModelConfig& c) {
  const std::string& p = c.platform();
  const std::string& b = c.backend();
  if (p == "onnxruntime_onnx" || b == "onnxruntime" || b == "onnx") return "onnx";
  if (b == "fil" || b == "forest") return "forest";
  if (b == "aot") return "aot";  // a library built from `quiver compile` output (model.so)
  if (b == "identity") return "identity";
  if (p == "ensemble") return "ensemble";
  if (b == "quiver") return "auto";  // any file a registered Quiver backend accepts (default_model_filename)
  if (p.empty() && b.empty()) return "";
  throw Error(ErrorCode::Unsupported,
              "platform '" + p + "' / backend '" + b +
                  "' is not supported (Quiver serves onnxruntime_onnx / onnxruntime, fil / forest, aot, identity and ensemble models)",
              {c.name()});
}

static std::string dims_text(const google::protobuf::RepeatedField<int64_t>& d) {
  std::string s = "[";
  for (int i = 0; i < d.size(); ++i) s += (i ? ", " : " ") + std::to_string(d[i]);
  return s + (d.empty() ? "]" : " ]");
}

static std::string param(const inference::ModelConfig& c, const std::string& key) {
  auto it = c.parameters().find(key);
  return it == c.parameters().end() ? "" : it->second.string_value();
}

static const std::vector<std::string>& forest_files() {
  static const std::vector<std::string> v = {"xgboost.json", "xgboost.ubj", "xgboost.model", "model.txt",
                                             "checkpoint.tl", "model.xml", "model.xml.gz"};
  return v;
}

std::string find_model_file(const inference::ModelConfig& c, const std::string& dir) {
  std::string engine = engine_for_config(c);
  if (engine == "identity") {
    return c.default_model_filename().empty() ? "" : (fs::path(dir) / c.default_model_filename()).string();
  }
  std::vector<std::string> candidates;
  if (!c.default_model_filename().empty()) {
    candidates.push_back(c.default_model_filename());
  } else if (engine == "auto") {
    throw Error(ErrorCode::InvalidArgument, "backend \"quiver\" needs default_model_filename", {c.name()});
  } else if (engine == "onnx") {
    candidates.push_back("model.onnx");
  } else if (engine == "aot") {
    candidates.push_back("model.so");
  } else {
    std::string mt = param(c, "model_type");
    if (mt == "xgboost") candidates.push_back("xgboost.model");
    else if (mt == "xgboost_json") candidates.push_back("xgboost.json");
    else if (mt == "xgboost_ubj") candidates.push_back("xgboost.ubj");
    else if (mt == "lightgbm") candidates.push_back("model.txt");
    else if (mt == "treelite_checkpoint") candidates.push_back("checkpoint.tl");
    else candidates = forest_files();
  }
  for (const auto& f : candidates) {
    if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
      throw Error(ErrorCode::InvalidArgument, "default_model_filename '" + f + "' must be a plain file name", {c.name()});
    fs::path p = fs::path(dir) / f;
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
  }
  ErrorWhere w;
  w.model = c.name();
  w.file = dir;
  std::string list;
  for (const auto& f : candidates) list += (list.empty() ? "" : ", ") + f;
  throw Error(ErrorCode::NotFound, "no model file (" + list + ") in version directory", w);
}

void guess_platform(inference::ModelConfig& c, const std::string& dir) {
  std::error_code ec;
  if (fs::exists(fs::path(dir) / "model.onnx", ec)) {
    c.set_platform("onnxruntime_onnx");
    c.set_backend("onnxruntime");
    return;
  }
  if (fs::exists(fs::path(dir) / "model.so", ec)) {
    c.set_backend("aot");
    return;
  }
  for (const auto& f : forest_files()) {
    if (fs::exists(fs::path(dir) / f, ec)) {
      // Quiver's own forest interface (input -> prediction, margin): a repository that wants
      // FIL's names and class outputs says backend: "fil".
      c.set_backend("forest");
      return;
    }
  }
  ErrorWhere w;
  w.model = c.name();
  w.file = dir;
  throw Error(ErrorCode::NotFound,
              "no config.pbtxt and no recognised model file (model.onnx, model.so, xgboost.json, model.txt, ...) to auto-complete from",
              w);
}

static bool model_batchable(const ModelInfo& info) {
  if (info.max_batch > 0) return true;
  if (info.inputs.empty()) return false;
  for (const auto* v : {&info.inputs, &info.outputs})
    for (const auto& t : *v)
      if (t.shape.empty() || t.shape[0].is_fixed()) return false;
  return true;
}

static void complete_tensors(const inference::ModelConfig& c, bool batch, const std::vector<TensorInfo>& model_side,
                             google::protobuf::RepeatedPtrField<inference::ModelInput>* cin,
                             google::protobuf::RepeatedPtrField<inference::ModelOutput>* cout) {
  const char* what = cin ? "input" : "output";
  auto check_one = [&](const std::string& name, int dt, const google::protobuf::RepeatedField<int64_t>& dims) {
    auto it = std::find_if(model_side.begin(), model_side.end(), [&](const TensorInfo& t) { return t.name == name; });
    if (it == model_side.end())
      throw Error(ErrorCode::InvalidArgument, std::string("configuration lists ") + what + " '" + name +
                                                  "' that the model does not have", {c.name(), "", name});
    auto cd = config_dtype(dt);
    if (!cd || *cd != it->dtype)
      throw Error(ErrorCode::InvalidArgument,
                  std::string("configuration data_type ") + inference::DataType_Name(static_cast<inference::DataType>(dt)) +
                      " does not match the model's " + std::string(dtype_triton_config_name(it->dtype)),
                  {c.name(), "", name});
    size_t skip = batch ? 1 : 0;
    if (it->shape.size() < skip || static_cast<size_t>(dims.size()) != it->shape.size() - skip)
      throw Error(ErrorCode::InvalidArgument,
                  "configuration dims (rank " + std::to_string(dims.size()) + (batch ? " + batch" : "") +
                      ") do not match the model shape " + shape_to_string(it->shape),
                  {c.name(), "", name});
    for (int d = 0; d < dims.size(); ++d) {
      const Dim& md = it->shape[d + skip];
      if (dims[d] >= 0 && md.is_fixed() && md.value != dims[d])
        throw Error(ErrorCode::InvalidArgument,
                    "configuration dims do not match the model shape " + shape_to_string(it->shape), {c.name(), "", name});
    }
  };
  auto dims_of = [&](const TensorInfo& t, google::protobuf::RepeatedField<int64_t>* out) {
    for (size_t d = batch ? 1 : 0; d < t.shape.size(); ++d) out->Add(t.shape[d].is_fixed() ? t.shape[d].value : -1);
  };
  for (const auto& t : model_side) {
    bool found = false;
    if (cin) {
      for (const auto& x : *cin) if (x.name() == t.name) found = true;
      if (!found) {
        auto* x = cin->Add();
        x->set_name(t.name);
        x->set_data_type(static_cast<inference::DataType>(to_config_dtype(t.dtype)));
        dims_of(t, x->mutable_dims());
      }
    } else {
      for (const auto& x : *cout) if (x.name() == t.name) found = true;
      if (!found) {
        auto* x = cout->Add();
        x->set_name(t.name);
        x->set_data_type(static_cast<inference::DataType>(to_config_dtype(t.dtype)));
        dims_of(t, x->mutable_dims());
      }
    }
  }
  // `reshape`: the model sees reshape.shape, clients see dims; both must hold the same elements
  // (fixed dims: the same product; variable dims: as many on each side, matched in order).
  auto check_reshape = [&](const std::string& name, const google::protobuf::RepeatedField<int64_t>& dims,
                           const google::protobuf::RepeatedField<int64_t>& shape) {
    int64_t a = 1, b = 1;
    int va = 0, vb = 0;
    for (int64_t d : dims) d < 0 ? ++va : (a *= d, 0);
    for (int64_t d : shape) d < 0 ? ++vb : (b *= d, 0);
    if (va != vb || (va == 0 && a != b))
      throw Error(ErrorCode::InvalidArgument,
                  std::string(what) + " reshape " + dims_text(shape) + " does not hold the elements of dims " + dims_text(dims),
                  {c.name(), "", name});
  };
  auto model_dims = [](const auto& x) -> const google::protobuf::RepeatedField<int64_t>& {
    return x.has_reshape() ? x.reshape().shape() : x.dims();
  };
  if (cin) {
    for (const auto& x : *cin) {
      if (x.has_reshape()) check_reshape(x.name(), x.dims(), x.reshape().shape());
      check_one(x.name(), x.data_type(), model_dims(x));
    }
  } else {
    for (const auto& x : *cout) {
      if (x.has_reshape()) check_reshape(x.name(), x.dims(), x.reshape().shape());
      check_one(x.name(), x.data_type(), model_dims(x));
    }
  }
}

void complete_config(inference::ModelConfig& c, const ModelInfo& info) {
  const bool batchable = model_batchable(info);
  const bool auto_io = c.input_size() == 0 && c.output_size() == 0;
  if (c.max_batch_size() < 0)
    throw Error(ErrorCode::InvalidArgument, "max_batch_size must be >= 0", {c.name()});
  if (c.max_batch_size() == 0 && auto_io && batchable) {
    // Triton's auto-complete: batching models get max_batch_size 4 (or the model's own limit)
    // and the dynamic batcher.
    int64_t mb = info.max_batch > 0 ? std::min<int64_t>(info.max_batch, 4) : 4;
    c.set_max_batch_size(static_cast<int32_t>(mb));
    if (c.scheduling_choice_case() == inference::ModelConfig::SCHEDULING_CHOICE_NOT_SET) c.mutable_dynamic_batching();
  }
  if (c.max_batch_size() > 0) {
    if (!batchable)
      throw Error(ErrorCode::InvalidArgument,
                  "max_batch_size " + std::to_string(c.max_batch_size()) +
                      " > 0 but the model has no batch dimension (first dimension of every input and output fixed)",
                  {c.name()});
    if (info.max_batch > 0 && c.max_batch_size() > info.max_batch)
      throw Error(ErrorCode::InvalidArgument,
                  "max_batch_size " + std::to_string(c.max_batch_size()) + " exceeds the model's limit " +
                      std::to_string(info.max_batch), {c.name()});
  }
  const bool batch = c.max_batch_size() > 0;
  complete_tensors(c, batch, info.inputs, c.mutable_input(), nullptr);
  complete_tensors(c, batch, info.outputs, nullptr, c.mutable_output());
  if (c.instance_group_size() == 0) {
    auto* g = c.add_instance_group();
    // An ensemble only passes tensors between its steps: let as many calls run as there are cores.
    g->set_count(c.platform() == "ensemble" ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) : 1);
    g->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  }
  for (auto& g : *c.mutable_instance_group()) {
    if (g.kind() == inference::ModelInstanceGroup::KIND_GPU && info.device.empty())
      throw Error(ErrorCode::Unsupported,
                  "instance_group kind KIND_GPU: this model runs on the CPU (only ONNX models have a GPU executor)",
                  {c.name()});
    if (g.kind() == inference::ModelInstanceGroup::KIND_AUTO) g.set_kind(inference::ModelInstanceGroup::KIND_CPU);
    if (g.count() <= 0) g.set_count(1);
  }
  if (c.has_dynamic_batching()) {
    const auto& db = c.dynamic_batching();
    for (int p : db.preferred_batch_size())
      if (p <= 0 || p > c.max_batch_size())
        throw Error(ErrorCode::InvalidArgument,
                    "preferred_batch_size " + std::to_string(p) + " is not in [1, max_batch_size " +
                        std::to_string(c.max_batch_size()) + "]", {c.name()});
    if (db.priority_levels() > 0 &&
        (db.default_priority_level() == 0 || db.default_priority_level() > db.priority_levels()))
      throw Error(ErrorCode::InvalidArgument, "default_priority_level must be in [1, priority_levels]", {c.name()});
  }
  if (c.has_sequence_batching())
    throw Error(ErrorCode::Unsupported, "sequence batching is not supported", {c.name()});
  if (c.has_ensemble_scheduling() != (c.platform() == "ensemble"))
    throw Error(ErrorCode::InvalidArgument, "ensemble_scheduling goes with platform \"ensemble\" (and only with it)", {c.name()});
}

std::vector<int64_t> version_directories(const std::string& model_dir, const std::string& model) {
  std::vector<int64_t> present;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(model_dir, ec)) {
    std::string n = e.path().filename().string();
    if (!e.is_directory() || n.empty() || n.size() > 18 || !std::all_of(n.begin(), n.end(), ::isdigit)) continue;
    present.push_back(std::stoll(n));
  }
  if (present.empty()) {
    ErrorWhere w;
    w.model = model;
    w.file = model_dir;
    throw Error(ErrorCode::NotFound, "model has no numeric version directory", w);
  }
  return present;
}

std::vector<int64_t> select_versions(const inference::ModelConfig& c, std::vector<int64_t> present) {
  std::sort(present.begin(), present.end());
  const auto& vp = c.version_policy();
  if (vp.has_all()) return present;
  if (vp.has_specific()) {
    std::vector<int64_t> out;
    for (int64_t v : vp.specific().versions()) {
      if (!std::binary_search(present.begin(), present.end(), v))
        throw Error(ErrorCode::NotFound, "version " + std::to_string(v) + " named by the version policy does not exist",
                    {c.name()});
      out.push_back(v);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }
  size_t n = vp.has_latest() && vp.latest().num_versions() > 0 ? vp.latest().num_versions() : 1;
  if (present.size() > n) present.erase(present.begin(), present.end() - static_cast<long>(n));
  return present;
}


// ---- identity backend ----
namespace {
class IdentityModel final : public Model {
 public:
  IdentityModel(ModelInfo info, int64_t delay_us) : info_(std::move(info)), delay_us_(delay_us) {}
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState&) const override {
    validate_inputs(info_, inputs);
    if (delay_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
    outputs.resize(info_.outputs.size());
    for (size_t i = 0; i < outputs.size(); ++i) {
      const Tensor& in = inputs[i];
      outputs[i].ensure(in.dtype(), in.dims());
      outputs[i].copy_from(in);
    }
  }

 private:
  ModelInfo info_;
  int64_t delay_us_ = 0;
};
}  // namespace

Shape config_shape(const google::protobuf::RepeatedField<int64_t>& dims, bool batched) {
  Shape s;
  if (batched) s.push_back(Dim::sym("batch"));
  for (int64_t d : dims) s.push_back(d >= 0 ? Dim(d) : Dim::sym(""));
  return s;
}

std::shared_ptr<const Model> make_identity_model(const inference::ModelConfig& c, const std::string& version) {
  ModelInfo info;
  info.name = c.name();
  info.backend = "identity";
  info.format = "config";
  info.version = version;
  info.max_batch = c.max_batch_size();
  if (c.input_size() == 0 || c.input_size() != c.output_size())
    throw Error(ErrorCode::InvalidArgument,
                "identity backend needs the same number (>0) of inputs and outputs in config.pbtxt", {c.name()});
  const bool batched = c.max_batch_size() > 0;
  for (int i = 0; i < c.input_size(); ++i) {
    const auto& in = c.input(i);
    const auto& out = c.output(i);
    auto dt = config_dtype(in.data_type());
    if (!dt || *dt == DType::Undefined)
      throw Error(ErrorCode::InvalidArgument, "unsupported data_type", {c.name(), "", in.name()});
    if (out.data_type() != in.data_type())
      throw Error(ErrorCode::InvalidArgument, "identity output must have the data_type of input '" + in.name() + "'",
                  {c.name(), "", out.name()});
    // The model side of the identity: the input's reshape when it has one.
    const auto& model_side = in.has_reshape() ? in.reshape().shape() : in.dims();
    info.inputs.push_back({in.name(), *dt, config_shape(model_side, batched)});
    info.outputs.push_back({out.name(), *dt, config_shape(model_side, batched)});
  }
  // Like Triton's identity backend: parameters { key: "execute_delay_ms" value: { string_value: "N" } }.
  int64_t delay_us = 0;
  std::string d = param(c, "execute_delay_ms");
  if (!d.empty()) {
    try {
      delay_us = static_cast<int64_t>(std::stod(d) * 1000.0);
    } catch (const std::exception&) {
      throw Error(ErrorCode::InvalidArgument, "execute_delay_ms '" + d + "' is not a number", {c.name()});
    }
  }
  return std::make_shared<IdentityModel>(std::move(info), delay_us);
}

}  // namespace quiver::repository
