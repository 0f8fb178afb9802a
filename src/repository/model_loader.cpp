// One version of a repository model: engine, file, load options from the config, auto-complete,
// and the config's `reshape` as a thin Model adapter (so every caller sees the config's dims).
#include <filesystem>

#include "kserve/tensors.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/core/util.hpp"
#include "repository/loader.hpp"

namespace fs = std::filesystem;

namespace quiver::repository {

std::vector<int64_t> reshape_dims(std::span<const int64_t> actual, bool batched, std::span<const int64_t> from,
                                  std::span<const int64_t> to, const ErrorWhere& where) {
  const size_t skip = batched ? 1 : 0;
  std::vector<int64_t> var;  // the tensor's values of the variable dims of `from`, in order
  for (size_t i = 0; i < from.size() && i + skip < actual.size(); ++i)
    if (from[i] < 0) var.push_back(actual[i + skip]);
  int unknown = 0;
  for (int64_t d : to) unknown += d < 0;
  int64_t numel = 1;
  for (int64_t d : actual) numel *= d;
  std::vector<int64_t> dims;
  if (batched) dims.push_back(actual.empty() ? 1 : actual[0]);
  size_t vi = 0, infer_at = 0;
  int64_t known = 1;  // product of the non-batch dims other than the inferred one
  for (int64_t d : to) {
    if (d < 0 && unknown == 1) {  // a single variable dim: from the element count
      infer_at = dims.size();
      dims.push_back(0);
      continue;
    }
    dims.push_back(d >= 0 ? d : vi < var.size() ? var[vi++] : 0);
    known *= dims.back();
  }
  if (unknown == 1) {
    const int64_t rows = batched ? dims[0] : 1;
    const int64_t per_row = rows > 0 ? numel / rows : 0;
    dims[infer_at] = known > 0 ? per_row / known : 0;
  }
  int64_t total = 1;
  for (int64_t d : dims) total *= d;
  if (total != numel) {
    std::string a, b;
    for (int64_t d : actual) a.append(a.empty() ? "" : ",").append(std::to_string(d));
    for (int64_t d : to) b.append(b.empty() ? "" : ",").append(std::to_string(d));
    throw Error(ErrorCode::InvalidArgument,
                "tensor '" + where.tensor + "' of shape [" + a + "] cannot be reshaped to [" + (batched ? "batch" : "") +
                    (batched && !b.empty() ? "," : "") + b + "]",
                where);
  }
  return dims;
}

namespace {

// The config's view of a model whose tensors the config reshapes: inputs arrive with the config's
// dims and are viewed with the model's (no copy); outputs leave with the config's dims.
class ReshapeModel final : public Model {
 public:
  struct Io {
    bool reshape = false;
    std::vector<int64_t> dims, model_dims;  // without the batch dim
  };
  ReshapeModel(std::shared_ptr<const Model> inner, ModelInfo info, bool batched, std::vector<Io> in, std::vector<Io> out)
      : inner_(std::move(inner)), info_(std::move(info)), batched_(batched), in_(std::move(in)), out_(std::move(out)) {}
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return inner_->make_state(); }
  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const override {
    const bool batched = batched_;
    std::vector<Tensor> viewed(inputs.begin(), inputs.end());
    for (size_t i = 0; i < viewed.size() && i < in_.size(); ++i)
      if (in_[i].reshape)
        viewed[i] = viewed[i].reshaped(reshape_dims(viewed[i].dims(), batched, in_[i].dims, in_[i].model_dims,
                                                    {info_.name, "", info_.inputs[i].name}));
    inner_->run(viewed, outputs, state);
    for (size_t o = 0; o < outputs.size() && o < out_.size(); ++o)
      if (out_[o].reshape)
        outputs[o].set_dims(reshape_dims(outputs[o].dims(), batched, out_[o].model_dims, out_[o].dims,
                                         {info_.name, "", info_.outputs[o].name}));
  }
  void describe(std::ostream& os) const override { inner_->describe(os); }

 private:
  std::shared_ptr<const Model> inner_;
  ModelInfo info_;
  bool batched_;  // the config batches: dim 0 is the batch on both sides
  std::vector<Io> in_, out_;
};

// Wraps `model` when the completed config reshapes any of its tensors.
std::shared_ptr<const Model> apply_reshapes(std::shared_ptr<const Model> model, const inference::ModelConfig& c) {
  bool any = false;
  for (const auto& t : c.input()) any |= t.has_reshape();
  for (const auto& t : c.output()) any |= t.has_reshape();
  if (!any) return model;
  ModelInfo info = model->info();
  auto bind = [&](const auto& cfg, std::vector<TensorInfo>& side) {
    std::vector<ReshapeModel::Io> io(side.size());
    for (const auto& t : cfg) {
      if (!t.has_reshape()) continue;
      for (size_t i = 0; i < side.size(); ++i) {
        if (side[i].name != t.name()) continue;
        io[i].reshape = true;
        io[i].dims.assign(t.dims().begin(), t.dims().end());
        io[i].model_dims.assign(t.reshape().shape().begin(), t.reshape().shape().end());
        Shape s = config_shape(t.dims(), c.max_batch_size() > 0);
        if (c.max_batch_size() > 0 && !side[i].shape.empty()) s[0] = side[i].shape[0];  // the model's batch dim
        side[i].shape = std::move(s);
      }
    }
    return io;
  };
  auto in = bind(c.input(), info.inputs);
  auto out = bind(c.output(), info.outputs);
  return std::make_shared<ReshapeModel>(std::move(model), std::move(info), c.max_batch_size() > 0, std::move(in),
                                        std::move(out));
}

}  // namespace

LoadedModel load_repository_version(inference::ModelConfig c, const std::string& version_dir, const std::string& version,
                                    const std::string& config_text, const std::string& config_path,
                                    int intra_op_threads, const ModelResolver& resolver) {
  const std::string name = c.name();
  LoadedModel lm;
  try {
    if (engine_for_config(c).empty()) guess_platform(c, version_dir);
    lm.engine = engine_for_config(c);
    if (lm.engine == "identity" || lm.engine == "ensemble") {  // defined by the config alone
      lm.model = lm.engine == "identity" ? make_identity_model(c, version) : make_ensemble_model(c, version, resolver);
      lm.sha256 = sha256_hex(config_text);
      lm.path = config_path;
    } else {
      std::string file = find_model_file(c, version_dir);
      LoadOptions lo;
      lo.name = name;
      lo.version = version;
      lo.intra_op_threads = intra_op_threads;
      for (const auto& [k, p] : c.parameters()) lo.params[k] = p.string_value();
      // backend "fil": Triton FIL's tensor names and output_class / predict_proba / threshold,
      // so that a Triton FIL repository works unchanged; "forest" keeps Quiver's own interface.
      if (c.backend() == "fil") {
        lo.params.emplace("interface", "triton_fil");
        // A binary predict_proba model declared with output dims [2] gets [1 - p, p], as FIL
        // writes it (its own test configs declare [2]); [1] keeps p alone.
        for (const auto& o : c.output())
          if (o.name() == "output__0" && o.dims_size() > 0 && o.dims(o.dims_size() - 1) == 2)
            lo.params.emplace("binary_proba_columns", "2");
      }
      // instance_group { kind: KIND_GPU gpus: [N] }: the GPU executor on device N (the first GPU
      // group decides; a "device" parameter in the config wins, e.g. "gpu-emulator" for tests).
      if (!lo.params.count("device"))
        for (const auto& g : c.instance_group())
          if (g.kind() == inference::ModelInstanceGroup::KIND_GPU) {
            lo.params["device"] = "cuda:" + std::to_string(g.gpus_size() ? g.gpus(0) : 0);
            break;
          }
      lm.model = load_model(file, lo, lm.engine == "auto" ? "" : lm.engine);
      lm.sha256 = lm.model->info().sha256.empty() ? sha256_file(file) : lm.model->info().sha256;
      lm.path = file;
    }
    complete_config(c, lm.model->info());
    lm.model = apply_reshapes(std::move(lm.model), c);
  } catch (const Error& e) {
    throw e.with_context({name});
  }
  (*c.mutable_parameters())[kserve::kChecksumParameter].set_string_value(lm.sha256);
  lm.config = std::move(c);
  return lm;
}

}  // namespace quiver::repository
