// DequantizeLinear(x, x_scale, x_zero_point?): y = (x - zero_point) * scale, per tensor, per `axis` or
// blocked (block_size). Output type: the scale's (or output_dtype). 8/4/2-bit inputs are unsupported.
#include "onnx/ops/quant.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(dequantizelinear) {
  registry.add({"", "DequantizeLinear", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  const DType xt = ctx.input_dtype(0);
                  if (!is_quant_int(xt)) ctx.unsupported("dequantizing " + dt_str(xt) + " is not supported");
                  DType ot = ctx.input_dtype(1);
                  if (const int64_t od = ctx.attrs().get_int("output_dtype", 0); od != 0) {
                    const auto d = dtype_from_onnx(static_cast<int32_t>(od));
                    if (!d) ctx.unsupported("output_dtype " + std::to_string(od) + " is not supported");
                    ot = *d;
                  }
                  if (!dtype_is_float(ot)) ctx.fail("scale / output must be a float type, got " + dt_str(ot));
                  const int64_t axis = ctx.attrs().get_int("axis", 1);
                  const int64_t block = ctx.attrs().get_int("block_size", 0);
                  ctx.set_output(0, ot, ctx.input(0).shape);
                  return make_kernel([ot, axis, block](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& s = ec.input(1);
                    const QuantLayout L = quant_layout(ec, x, s, axis, block);
                    const std::vector<double> sc = as_doubles(s);
                    std::vector<double> zp;
                    if (ec.has_input(2)) {
                      zp = as_doubles(ec.input(2));
                      if (zp.size() != sc.size()) ec.fail("zero point and scale shapes differ", "x_zero_point");
                    }
                    Tensor& y = ec.output(0, ot, x.dims());
                    const std::vector<double> xv = as_doubles(x);
                    std::vector<double> out(xv.size());
                    const bool single = ot == DType::F32;
                    const int64_t outer = L.kind == QuantLayout::Kind::Tensor ? 1 : L.outer;
                    const int64_t n = L.kind == QuantLayout::Kind::Tensor ? x.numel() : L.n;
                    const int64_t inner = L.kind == QuantLayout::Kind::Tensor ? 1 : L.inner;
                    for (int64_t o = 0; o < outer; ++o)
                      for (int64_t k = 0; k < n; ++k)
                        for (int64_t i = 0; i < inner; ++i) {
                          const size_t e = static_cast<size_t>((o * n + k) * inner + i);
                          const size_t q = static_cast<size_t>(quant_index(L, o, k, i));
                          const double d = xv[e] - (zp.empty() ? 0.0 : zp[q]);
                          out[e] = single ? static_cast<double>(static_cast<float>(d) * static_cast<float>(sc[q])) : d * sc[q];
                        }
                    if (!out.empty()) convert_elements(DType::F64, out.data(), ot, y.raw(), static_cast<int64_t>(out.size()));
                  });
                }});
}
}  // namespace quiver::onnx
