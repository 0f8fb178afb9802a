// Internal: the ONNX model, visible to the GPU executor (src/gpu), which runs a Plan compiled for its
// device target and uses this model's input checks and description.
#pragma once
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "onnx/plan.hpp"
#include "onnx/target.hpp"
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
  // Where each step of a device target's plan runs (inspect).
  void describe_placement(std::ostream& os) const;

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

// The loader behind load_onnx / load_onnx_bytes, for any target; the GPU executor wraps the result
// of a device target. No check of LoadOptions::params["device"]: the caller chose the target.
std::shared_ptr<OnnxModel> compile_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                              const LoadOptions& options, const CompileOptions& compile,
                                              const Target& target);
std::shared_ptr<OnnxModel> compile_onnx_file(const std::string& path, const LoadOptions& options,
                                             const CompileOptions& compile, const Target& target);

}  // namespace quiver::onnx
