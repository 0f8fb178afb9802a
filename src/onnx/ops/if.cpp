// If: runs then_branch or else_branch (compiled once at load) and copies the chosen branch's
// results into the node outputs. Branches read outer-scope values through Subgraph::outer_inputs.
#include "onnx/ops/subgraph_util.hpp"

namespace quiver::onnx {

namespace {

class IfKernel final : public Kernel {
 public:
  IfKernel(Subgraph then_g, Subgraph else_g) : g_{std::move(then_g), std::move(else_g)} {}
  void run(ExecContext& ec) const override {
    const Tensor& cond = ec.input(0);
    if (cond.numel() != 1) ec.fail("cond must hold exactly one value, got shape " + dims_to_string(cond.dims()));
    bool c;
    switch (cond.dtype()) {
      case DType::Bool: c = cond.data<bool>()[0]; break;
      default: c = visit_numeric(cond.dtype(), [&](auto tag) { return cond.data<typename decltype(tag)::type>()[0] != 0; });
    }
    const size_t k = c ? 0 : 1;
    const Subgraph& sg = g_[k];
    const Tensor* inputs[64];
    std::vector<const Tensor*> big;
    const Tensor** in = inputs;
    if (sg.outer_inputs.size() > 64) {
      big.resize(sg.outer_inputs.size());
      in = big.data();
    }
    for (size_t i = 0; i < sg.outer_inputs.size(); ++i) in[i] = ec.input_ptr(sg.outer_inputs[i]);
    PlanState& st = ec.subgraph_state(k);
    sg.plan->run(std::span<const Tensor* const>(in, sg.outer_inputs.size()), st);
    const size_t n = std::min(ec.num_outputs(), sg.plan->outputs.size());
    for (size_t i = 0; i < n; ++i) copy_to_output(ec, i, sg.plan->result(i, st));
  }

 private:
  Subgraph g_[2];
};

}  // namespace

QUIVER_REGISTER_OPS(if) {
  registry.add({"", "If", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const size_t nt = subgraph_num_outputs(ctx, "then_branch"), ne = subgraph_num_outputs(ctx, "else_branch");
                  if (nt != ne) ctx.fail("then_branch has " + std::to_string(nt) + " outputs, else_branch " + std::to_string(ne));
                  if (ctx.num_outputs() > nt)
                    ctx.fail("node has " + std::to_string(ctx.num_outputs()) + " outputs, branches " + std::to_string(nt));
                  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
                    if (subgraph_output_non_tensor(ctx, "then_branch", i) || subgraph_output_non_tensor(ctx, "else_branch", i))
                      ctx.unsupported("If with non-tensor (sequence/optional) outputs");
                    DType dt = subgraph_output_dtype_any(ctx, "then_branch", i);
                    if (dt == DType::Undefined) dt = subgraph_output_dtype_any(ctx, "else_branch", i);
                    if (dt == DType::Undefined) ctx.unsupported("branch output " + std::to_string(i) + " has no declared tensor type");
                  }
                  Subgraph t = ctx.compile_subgraph("then_branch", {});
                  Subgraph e = ctx.compile_subgraph("else_branch", {});
                  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
                    DType dt = subgraph_output_dtype_any(ctx, "then_branch", i);
                    if (dt == DType::Undefined) dt = subgraph_output_dtype_any(ctx, "else_branch", i);
                    // Known when both branches agree on the rank; a dim either branch leaves open is dynamic.
                    std::optional<std::vector<int64_t>> shape;
                    const auto& ts = t.plan->output_shapes[i];
                    const auto& es = e.plan->output_shapes[i];
                    if (ts && es && ts->size() == es->size()) {
                      shape = *ts;
                      for (size_t k = 0; k < shape->size(); ++k)
                        if ((*ts)[k] != (*es)[k]) (*shape)[k] = -1;
                    }
                    ctx.set_output(i, dt, shape);
                  }
                  return std::make_unique<IfKernel>(std::move(t), std::move(e));
                }}, Repro::Exact);
}

}  // namespace quiver::onnx
