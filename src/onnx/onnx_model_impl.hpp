// Internal: the CPU ONNX model, visible to the GPU executor (src/gpu), which runs the same compiled
// Plan with device kernels and uses this model's input checks and description.
#pragma once
#include <memory>
#include <ostream>
#include <span>
#include <vector>

#include "onnx/plan.hpp"
#include "quiver/onnx/onnx_model.hpp"

namespace quiver::onnx {

class OnnxModel final : public Model {
 public:
  OnnxModel(ModelInfo info, std::shared_ptr<const Plan> plan, std::vector<bool> rank_known, ModelSummary summary)
      : info_(std::move(info)), plan_(std::move(plan)), rank_known_(std::move(rank_known)), summary_(std::move(summary)) {}

  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override;
  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const override;
  void describe(std::ostream& os) const override;

  // Count, dtype and shape of the inputs against the graph's declaration; throws InvalidArgument
  // naming the tensor.
  void check_inputs(std::span<const Tensor> inputs) const;
  const Plan& plan() const { return *plan_; }
  const std::shared_ptr<const Plan>& shared_plan() const { return plan_; }
  ModelInfo& mutable_info() { return info_; }  // before the model is shared

 private:
  ModelInfo info_;
  std::shared_ptr<const Plan> plan_;
  std::vector<bool> rank_known_;
  ModelSummary summary_;
};

}  // namespace quiver::onnx
