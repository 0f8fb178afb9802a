// CastLike(input, target_type): Cast to the element type of the second input.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(castlike) {
  registry.add({"", "CastLike", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  const DType from = ctx.input_dtype(0);
                  const DType dst = ctx.input_dtype(1);
                  if (from == DType::Undefined || dst == DType::Undefined)
                    ctx.unsupported("CastLike with an unsupported element type");
                  ctx.set_output(0, dst, ctx.input(0).shape);
                  return make_kernel([from, dst](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.dtype() != from) ec.fail("input dtype " + dt_str(x.dtype()) + " differs from the declared " + dt_str(from));
                    Tensor& y = ec.output(0, dst, x.dims());
                    try {
                      convert_elements(from, x.raw(), dst, y.raw(), x.numel());
                    } catch (const Error& e) {
                      ec.fail(e.message());
                    }
                  });
                }}, Repro::Exact);
}
}  // namespace quiver::onnx
