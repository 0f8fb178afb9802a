#include "quiver/core/model.hpp"

#include <algorithm>
#include <fstream>
#include <mutex>

#include "quiver/core/util.hpp"

namespace quiver {

void Model::describe(std::ostream& os) const {
  const auto& mi = info();
  os << "model:   " << mi.name << " (" << mi.backend << ", " << mi.format << ")\n";
  if (!mi.version.empty()) os << "version: " << mi.version << "\n";
  if (!mi.sha256.empty()) os << "sha256:  " << mi.sha256 << "\n";
  if (mi.max_batch > 0) os << "max_batch: " << mi.max_batch << "\n";
  os << "inputs:\n";
  for (const auto& t : mi.inputs)
    os << "  " << t.name << "  " << dtype_name(t.dtype) << "  " << shape_to_string(t.shape) << "\n";
  os << "outputs:\n";
  for (const auto& t : mi.outputs)
    os << "  " << t.name << "  " << dtype_name(t.dtype) << "  " << shape_to_string(t.shape) << "\n";
}

std::vector<Tensor> Model::run_once(std::span<const Tensor> inputs) const {
  auto state = make_state();
  std::vector<Tensor> outputs;
  run(inputs, outputs, *state);
  return outputs;
}

size_t Model::input_index(const std::string& name) const {
  const auto& v = info().inputs;
  for (size_t i = 0; i < v.size(); ++i) if (v[i].name == name) return i;
  throw_error(ErrorCode::NotFound, "model has no input named '" + name + "'", {info().name, "", name});
}

size_t Model::output_index(const std::string& name) const {
  const auto& v = info().outputs;
  for (size_t i = 0; i < v.size(); ++i) if (v[i].name == name) return i;
  throw_error(ErrorCode::NotFound, "model has no output named '" + name + "'", {info().name, "", name});
}

std::vector<Tensor> Model::run_named(const std::vector<NamedTensor>& inputs) const {
  const auto& mi = info();
  std::vector<Tensor> ordered(mi.inputs.size());
  std::vector<bool> seen(mi.inputs.size(), false);
  for (const auto& nt : inputs) {
    size_t i = input_index(nt.name);
    if (seen[i]) throw_error(ErrorCode::InvalidArgument, "input given twice", {mi.name, "", nt.name});
    seen[i] = true;
    ordered[i] = nt.tensor;
  }
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) throw_error(ErrorCode::InvalidArgument, "missing input", {mi.name, "", mi.inputs[i].name});
  return run_once(ordered);
}

void validate_inputs(const ModelInfo& info, std::span<const Tensor> inputs) {
  if (inputs.size() != info.inputs.size())
    throw_error(ErrorCode::InvalidArgument, "expected " + std::to_string(info.inputs.size()) +
                                                " inputs, got " + std::to_string(inputs.size()),
                {info.name});
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& ti = info.inputs[i];
    const auto& t = inputs[i];
    if (t.dtype() != ti.dtype)
      throw_error(ErrorCode::InvalidArgument,
                  "expected dtype " + std::string(dtype_name(ti.dtype)) + ", got " + std::string(dtype_name(t.dtype())),
                  {info.name, "", ti.name});
    if (!ti.shape.empty() || t.rank() == 0) {
      if (!shape_matches(ti.shape, t.dims()))
        throw_error(ErrorCode::InvalidArgument,
                    "expected shape " + shape_to_string(ti.shape) + ", got " + dims_to_string(t.dims()),
                    {info.name, "", ti.name});
    }
    if (info.max_batch > 0 && t.rank() > 0 && t.dim(0) > info.max_batch)
      throw_error(ErrorCode::InvalidArgument,
                  "batch " + std::to_string(t.dim(0)) + " exceeds max_batch " + std::to_string(info.max_batch),
                  {info.name, "", ti.name});
  }
}

}  // namespace quiver
