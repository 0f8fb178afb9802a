// QuantizeLinear(x, y_scale, y_zero_point?): y = saturate(round_half_even(x / scale) + zero_point).
// Scale / zero point per tensor, per `axis` (1-D) or blocked (block_size). Output type: the zero
// point's, else output_dtype, else uint8. 8/4/2-bit float and int outputs are unsupported.
#include "onnx/ops/quant.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(quantizelinear) {
  registry.add({"", "QuantizeLinear", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  const DType xt = ctx.input_dtype(0);
                  if (!dtype_is_float(xt) && xt != DType::I32)
                    ctx.fail("unsupported input dtype " + dt_str(xt), ctx.input_name(0), ErrorCode::Unsupported);
                  const DType qt = ctx.has_input(2) ? ctx.input_dtype(2) : output_dtype_attr(ctx, DType::U8);
                  if (!is_quant_int(qt) || qt == DType::I32) ctx.unsupported("quantizing to " + dt_str(qt) + " is not supported");
                  const int64_t axis = ctx.attrs().get_int("axis", 1);
                  const int64_t block = ctx.attrs().get_int("block_size", 0);
                  ctx.set_output(0, qt, ctx.input(0).shape);
                  return make_kernel([qt, axis, block](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const QuantParams p = quant_params(ec, x, axis, block, "y_zero_point");
                    Tensor& y = ec.output(0, qt, x.dims());
                    const bool single = x.dtype() == DType::F32 && ec.input(1).dtype() == DType::F32;
                    visit_numeric(qt, [&](auto qtag) {
                      using Q = typename decltype(qtag)::type;
                      if constexpr (std::is_integral_v<Q>) {
                        Q* py = y.data<Q>();
                        const std::vector<double> xv = as_doubles(x);
                        for_each_quant(p.layout, x.numel(), [&](int64_t e, int64_t qi) {
                          const size_t q = static_cast<size_t>(qi);
                          const double xe = xv[static_cast<size_t>(e)];
                          // float32 inputs divide in float32, as the reference does.
                          const double v = single ? static_cast<double>(static_cast<float>(xe) / static_cast<float>(p.scale[q]))
                                                  : xe / p.scale[q];
                          py[e] = saturate_round<Q>(std::nearbyint(v) + p.zero_at(q));
                        });
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
