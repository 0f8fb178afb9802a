#include "onnx/plan.hpp"

#include <algorithm>

#include "quiver/core/shape.hpp"
#include "quiver/core/util.hpp"

namespace quiver::onnx {

namespace {

class StepContext final : public ExecContext {
 public:
  StepContext(const Plan& plan, const Step& step, PlanState& st) : plan_(plan), step_(step), st_(st) {}

  size_t num_inputs() const override { return step_.inputs.size(); }
  const Tensor* input_ptr(size_t i) const override {
    if (i >= step_.inputs.size()) return nullptr;  // trailing optional inputs may be left off
    const ValueRef r = step_.inputs[i];
    switch (r.kind) {
      case ValueRef::Absent: return nullptr;
      case ValueRef::Input: return st_.inputs[r.index];
      case ValueRef::Const: return plan_.constants[r.index].get();
      default: return &st_.slots[r.index];
    }
  }
  size_t num_outputs() const override { return step_.outputs.size(); }
  bool wants_output(size_t i) const override { return i < step_.outputs.size() && step_.outputs[i] >= 0; }
  Tensor& output(size_t i, DType dtype, std::span<const int64_t> dims) override {
    if (i >= step_.outputs.size() || step_.outputs[i] < 0) {
      // Not consumed by anyone: still give the kernel somewhere to write.
      Tensor& t = dummy();
      t.ensure(dtype, dims);
      return t;
    }
    Tensor& t = st_.slots[step_.outputs[i]];
    t.ensure(dtype, dims);
    return t;
  }
  void alias_output(size_t i, size_t in, std::span<const int64_t> dims) override {
    const Tensor& src = input(in);
    if (numel(dims) != src.numel())
      fail("cannot view " + dims_to_string(src.dims()) + " as " + dims_to_string(dims));
    if (i >= step_.outputs.size() || step_.outputs[i] < 0) return;
    if (!step_.view_out[i]) {  // not planned as a view: copy
      Tensor& t = output(i, src.dtype(), dims);
      t.copy_from(src.reshaped(dims));
      t.set_dims(dims);
      return;
    }
    st_.slots[step_.outputs[i]] = Tensor::view(src.dtype(), dims, src.raw());
  }
  void* scratch(size_t bytes) override {
    if (st_.scratch.capacity_bytes() < bytes || !st_.scratch.defined())
      st_.scratch = Tensor::empty(DType::U8, {static_cast<int64_t>(bytes)});
    return st_.scratch.raw();
  }
  PlanState& subgraph_state(size_t k) override { return *st_.subs[step_.first_sub + k]; }
  const std::string& node_name() const override { return step_.label; }
  [[noreturn]] void fail(const std::string& message, const std::string& tensor = "",
                         ErrorCode code = ErrorCode::InvalidArgument) const override {
    throw Error(code, message, {plan_.model_name, step_.label, tensor});
  }

 private:
  Tensor& dummy() {
    dummies_.push_back(std::make_unique<Tensor>());
    return *dummies_.back();
  }
  const Plan& plan_;
  const Step& step_;
  PlanState& st_;
  std::vector<std::unique_ptr<Tensor>> dummies_;
};

}  // namespace

std::unique_ptr<PlanState> Plan::make_state() const {
  auto st = std::make_unique<PlanState>();
  st->slots.resize(num_slots);
  for (const auto& sp : subplans) st->subs.push_back(sp->make_state());
  return st;
}

const char* placement_name(Placement p) {
  switch (p) {
    case Placement::Cpu: return "cpu";
    case Placement::CpuDims: return "cpu (dims only)";
    case Placement::Device: return "device";
  }
  return "?";
}

void Plan::run(std::span<const Tensor* const> inputs, PlanState& st) const {
  if (!cpu_only)
    throw Error(ErrorCode::Internal, "this plan was compiled for target '" + target + "': its device executor runs it",
                {model_name});
  st.inputs = inputs.data();
  st.num_inputs = inputs.size();
  OpProfile* const profile = st.profile;
  for (size_t si = 0; si < steps.size(); ++si) {
    const Step& step = steps[si];
    StepContext ctx(*this, step, st);
    const int64_t t0 = profile ? now_ns() : 0;
    try {
      step.kernel->run(ctx);
      if (profile) profile->add(step.op_type, now_ns() - t0);
    } catch (const Error& e) {
      throw e.with_context({model_name, step.label});
    } catch (const std::exception& e) {
      throw Error(ErrorCode::Internal, e.what(), {model_name, step.label});
    }
  }
}

}  // namespace quiver::onnx
