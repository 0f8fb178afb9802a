// QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B?): integer convolution of the
// shifted inputs plus the int32 bias, scaled by x_scale * w_scale[m] / y_scale, rounded half to even,
// plus y_zp, saturated. w_scale / w_zp may be per output channel.
#include "onnx/ops/qconv.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(qlinearconv) {
  registry.add({"", "QLinearConv", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(8, 9);
                  ctx.expect_dtype(0, {DType::I8, DType::U8});
                  ctx.expect_dtype(3, {DType::I8, DType::U8});
                  const DType yt = ctx.input_dtype(7);
                  if (yt != DType::I8 && yt != DType::U8) ctx.fail("y_zero_point must be int8 or uint8", ctx.input_name(7));
                  const QConvAttrs a = read_qconv_attrs(ctx);
                  ctx.set_output(0, yt);
                  return make_kernel([a, yt](ExecContext& ec) {
                    const std::vector<double> xs = as_doubles(ec.input(1)), xz = as_doubles(ec.input(2)), ws = as_doubles(ec.input(4)),
                                              wz = as_doubles(ec.input(5)), ys = as_doubles(ec.input(6)), yz = as_doubles(ec.input(7));
                    if (xs.size() != 1 || ys.size() != 1 || yz.size() != 1) ec.fail("x_scale, y_scale and y_zero_point must be scalars");
                    std::vector<int32_t> acc;
                    const auto od = qconv_run(ec, a, ec.input(0), ec.input(3), xz, wz, acc);
                    const int64_t M = od[1], osz = product(od, 2), N = od[0];
                    std::vector<double> bias(static_cast<size_t>(M), 0.0);
                    if (ec.has_input(8)) {
                      bias = as_doubles(ec.input(8));
                      if (static_cast<int64_t>(bias.size()) != M) ec.fail("B must have M elements", "B");
                    }
                    if (ws.size() != 1 && static_cast<int64_t>(ws.size()) != M) ec.fail("w_scale must be a scalar or have M elements");
                    Tensor& y = ec.output(0, yt, od);
                    visit_numeric(yt, [&](auto tag) {
                      using Q = typename decltype(tag)::type;
                      if constexpr (std::is_integral_v<Q>) {
                        Q* py = y.data<Q>();
                        for (int64_t n = 0; n < N; ++n)
                          for (int64_t m = 0; m < M; ++m) {
                            const float f = static_cast<float>(xs[0]) * static_cast<float>(ws[ws.size() == 1 ? 0 : static_cast<size_t>(m)]) /
                                            static_cast<float>(ys[0]);
                            for (int64_t o = 0; o < osz; ++o) {
                              const size_t e = static_cast<size_t>((n * M + m) * osz + o);
                              py[e] = saturate_round<Q>((static_cast<double>(acc[e]) + bias[static_cast<size_t>(m)]) * static_cast<double>(f) + yz[0]);
                            }
                          }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
