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
  void report_no_product(const char* ran) override { ran_instead = ran; }
  const char* ran_instead = nullptr;  // set by report_no_product during this step's run
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

// Floating-point operations of a GEMM-type step (a multiply-add counts 2), for the profile's
// GFLOP/s; 0 for other ops. From the dims of the inputs taken before the step ran (its output may
// reuse an input's slot) and of its first output after.
struct FlopDims {
  std::vector<int64_t> in[3];
};
double step_flops(const std::string& op_type, const FlopDims& d, const Tensor* y) {
  const std::string op = op_type.substr(0, op_type.find('+'));  // "Conv+Relu" counts as Conv
  auto n = [](const std::vector<int64_t>& v) { return static_cast<double>(numel(v)); };
  if (op == "LSTM" || op == "GRU" || op == "RNN") {  // X [T, B, I] or [B, T, I], W [D, G*H, I], R [D, G*H, H]
    if (d.in[0].size() != 3 || d.in[0][2] == 0) return 0;
    return 2 * n(d.in[0]) / static_cast<double>(d.in[0][2]) * (n(d.in[1]) + n(d.in[2]));
  }
  if (!y || y->numel() == 0) return 0;
  const double ny = static_cast<double>(y->numel());
  if (op == "Gemm") {  // Y [M, N]; A holds M x K values (2-D, or 3-D with the fused transpose)
    if (y->rank() != 2 || y->dim(0) == 0) return 0;
    return 2 * ny * n(d.in[0]) / static_cast<double>(y->dim(0));
  }
  if (op == "MatMul") return d.in[0].empty() ? 0 : 2 * ny * static_cast<double>(d.in[0].back());
  if (op == "Conv") {  // W [Cout, Cin / group, k...]: each output value takes W's per-channel count
    if (d.in[1].empty() || d.in[1][0] == 0) return 0;
    return 2 * ny * n(d.in[1]) / static_cast<double>(d.in[1][0]);
  }
  return 0;
}

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
    FlopDims fd;
    if (profile)
      for (size_t i = 0; i < 3; ++i)
        if (const Tensor* t = ctx.input_ptr(i)) fd.in[i] = t->dims();
    const int64_t t0 = profile ? now_ns() : 0;
    try {
      step.kernel->run(ctx);
      if (profile) {
        const int64_t ns = now_ns() - t0;
        if (ctx.ran_instead) {
          profile->add(step.op_type + " (" + ctx.ran_instead + ")", ns, 0);
        } else {
          const Tensor* y = !step.outputs.empty() && step.outputs[0] >= 0 ? &st.slots[step.outputs[0]] : nullptr;
          profile->add(step.op_type, ns, step_flops(step.op_type, fd, y));
        }
      }
    } catch (const Error& e) {
      throw e.with_context({model_name, step.label});
    } catch (const std::exception& e) {
      throw Error(ErrorCode::Internal, e.what(), {model_name, step.label});
    }
  }
}

}  // namespace quiver::onnx
