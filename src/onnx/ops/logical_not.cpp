// Not (logical). The file is not called not.cpp because `not` is a C++ keyword (alternative token).
#include "onnx/ops/mathops.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(logical_not) {
  registry.add({"", "Not", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  ctx.expect_dtype(0, {DType::Bool});
                  ctx.set_output(0, DType::Bool, ctx.input(0).shape);
                  return make_kernel([](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    Tensor& y = ec.output(0, DType::Bool, x.dims());
                    const bool* px = x.data<bool>();
                    bool* py = y.data<bool>();
                    for (int64_t i = 0, n = x.numel(); i < n; ++i) py[i] = !px[i];
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(logical_not) {
  emitters.add("", "Not", exact(emit_unary("!v", {DType::Bool})));
}
}  // namespace quiver::onnx
