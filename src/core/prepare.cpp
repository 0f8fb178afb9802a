#include "quiver/core/prepare.hpp"

namespace quiver {

std::vector<Tensor> expected_inputs(const ModelInfo& info, int64_t batch, const std::map<std::string, int64_t>& dims) {
  if (batch < 1) throw Error(ErrorCode::InvalidArgument, "batch must be at least 1, got " + std::to_string(batch), {info.name});
  std::vector<Tensor> out;
  for (const auto& ti : info.inputs) {
    std::vector<int64_t> d;
    for (size_t i = 0; i < ti.shape.size(); ++i) {
      const Dim& x = ti.shape[i];
      if (x.is_fixed()) {
        d.push_back(x.value);
        continue;
      }
      auto it = dims.find(x.symbol);
      if (it != dims.end()) d.push_back(it->second);
      else if (i == 0) d.push_back(batch);
      else
        throw Error(ErrorCode::InvalidArgument,
                    "dynamic dim '" + x.symbol + "' at position " + std::to_string(i) + " needs a value",
                    {info.name, "", ti.name});
    }
    out.push_back(Tensor::zeros(ti.dtype, d));
  }
  return out;
}

std::map<std::string, int64_t> dims_of(const ModelInfo& info, std::span<const Tensor> inputs) {
  std::map<std::string, int64_t> dims;
  for (size_t i = 0; i < info.inputs.size() && i < inputs.size(); ++i) {
    const Shape& shape = info.inputs[i].shape;
    for (size_t d = 0; d < shape.size() && d < static_cast<size_t>(inputs[i].rank()); ++d)
      if (!shape[d].is_fixed()) dims.emplace(shape[d].symbol, inputs[i].dim(d));
  }
  return dims;
}

void prepare_state(const Model& model, RunState& state, int64_t batch, const std::map<std::string, int64_t>& dims) {
  const auto inputs = expected_inputs(model.info(), batch, dims);
  std::vector<Tensor> outputs;
  model.run(inputs, outputs, state);
}

}  // namespace quiver
