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
                  DType qt = DType::U8;
                  if (ctx.has_input(2)) {
                    qt = ctx.input_dtype(2);
                  } else if (const int64_t od = ctx.attrs().get_int("output_dtype", 0); od != 0) {
                    const auto d = dtype_from_onnx(static_cast<int32_t>(od));
                    if (!d) ctx.unsupported("output_dtype " + std::to_string(od) + " is not supported");
                    qt = *d;
                  }
                  if (!is_quant_int(qt) || qt == DType::I32) ctx.unsupported("quantizing to " + dt_str(qt) + " is not supported");
                  const int64_t axis = ctx.attrs().get_int("axis", 1);
                  const int64_t block = ctx.attrs().get_int("block_size", 0);
                  ctx.set_output(0, qt, ctx.input(0).shape);
                  return make_kernel([qt, axis, block](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& s = ec.input(1);
                    const QuantLayout L = quant_layout(ec, x, s, axis, block);
                    const std::vector<double> sc = as_doubles(s);
                    std::vector<double> zp;
                    if (ec.has_input(2)) {
                      zp = as_doubles(ec.input(2));
                      if (zp.size() != sc.size()) ec.fail("zero point and scale shapes differ", "y_zero_point");
                    }
                    Tensor& y = ec.output(0, qt, x.dims());
                    const bool single = x.dtype() == DType::F32 && s.dtype() == DType::F32;
                    visit_numeric(qt, [&](auto qtag) {
                      using Q = typename decltype(qtag)::type;
                      if constexpr (std::is_integral_v<Q>) {
                        Q* py = y.data<Q>();
                        std::vector<double> xv = as_doubles(x);
                        const int64_t outer = L.kind == QuantLayout::Kind::Tensor ? 1 : L.outer;
                        const int64_t n = L.kind == QuantLayout::Kind::Tensor ? x.numel() : L.n;
                        const int64_t inner = L.kind == QuantLayout::Kind::Tensor ? 1 : L.inner;
                        for (int64_t o = 0; o < outer; ++o)
                          for (int64_t k = 0; k < n; ++k)
                            for (int64_t i = 0; i < inner; ++i) {
                              const int64_t e = (o * n + k) * inner + i;
                              const size_t q = static_cast<size_t>(quant_index(L, o, k, i));
                              // float32 inputs divide in float32, as the reference does.
                              const double v = single ? static_cast<double>(static_cast<float>(xv[static_cast<size_t>(e)]) / static_cast<float>(sc[q]))
                                                      : xv[static_cast<size_t>(e)] / sc[q];
                              py[e] = saturate_round<Q>(std::nearbyint(v) + (zp.empty() ? 0.0 : zp[q]));
                            }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
