// DequantizeLinear(x, x_scale, x_zero_point?): y = (x - zero_point) * scale, per tensor, per `axis` or
// blocked (block_size). Output type: the scale's (or output_dtype). 8/4/2-bit inputs are unsupported.
#include "onnx/ops/quant.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(dequantizelinear) {
  registry.add({"", "DequantizeLinear", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  const DType xt = ctx.input_dtype(0);
                  if (!is_quant_int(xt)) ctx.unsupported("dequantizing " + dt_str(xt) + " is not supported");
                  const DType ot = output_dtype_attr(ctx, ctx.input_dtype(1));
                  if (!dtype_is_float(ot)) ctx.fail("scale / output must be a float type, got " + dt_str(ot));
                  const int64_t axis = ctx.attrs().get_int("axis", 1);
                  const int64_t block = ctx.attrs().get_int("block_size", 0);
                  ctx.set_output(0, ot, ctx.input(0).shape);
                  return make_kernel([ot, axis, block](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const QuantParams p = quant_params(ec, x, axis, block, "x_zero_point");
                    Tensor& y = ec.output(0, ot, x.dims());
                    const std::vector<double> xv = as_doubles(x);
                    std::vector<double> out(xv.size());
                    const bool single = ot == DType::F32;
                    for_each_quant(p.layout, x.numel(), [&](int64_t e, int64_t qi) {
                      const size_t q = static_cast<size_t>(qi);
                      const double d = xv[static_cast<size_t>(e)] - p.zero_at(q);
                      out[static_cast<size_t>(e)] =
                          single ? static_cast<double>(static_cast<float>(d) * static_cast<float>(p.scale[q])) : d * p.scale[q];
                    });
                    if (!out.empty()) convert_elements(DType::F64, out.data(), ot, y.raw(), static_cast<int64_t>(out.size()));
                  });
                }});
}
}  // namespace quiver::onnx
