// QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp): integer matmul of the
// zero-point-shifted inputs, scaled by a_scale * b_scale / y_scale (computed in the scales' own float
// type, as the reference does), plus y_zp, rounded half to even and saturated. Scalar scales only.
#include "onnx/ops/quant.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(qlinearmatmul) {
  registry.add({"", "QLinearMatMul", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(8, 8);
                  ctx.expect_dtype(0, {DType::I8, DType::U8});
                  ctx.expect_dtype(3, {DType::I8, DType::U8});
                  const DType yt = ctx.input_dtype(7);
                  if (yt != DType::I8 && yt != DType::U8) ctx.fail("y_zero_point must be int8 or uint8", ctx.input_name(7));
                  const DType st = ctx.input_dtype(1);
                  if (!dtype_is_float(st)) ctx.fail("scales must be float", ctx.input_name(1));
                  ctx.set_output(0, yt);
                  return make_kernel([yt, st](ExecContext& ec) {
                    for (size_t i : {1, 4, 6})
                      if (ec.input(i).numel() != 1)
                        ec.fail("only per-tensor (scalar) scales are supported", "", ErrorCode::Unsupported);
                    const std::vector<double> azp = as_doubles(ec.input(2)), bzp = as_doubles(ec.input(5)), yzp = as_doubles(ec.input(7));
                    const double as = as_doubles(ec.input(1))[0], bs = as_doubles(ec.input(4))[0], ys = as_doubles(ec.input(6))[0];
                    double factor;
                    if (st == DType::F16) factor = static_cast<float>(Half(static_cast<float>(Half(static_cast<float>(as * bs))) / static_cast<float>(ys)));
                    else if (st == DType::F32) factor = static_cast<float>(static_cast<float>(as) * static_cast<float>(bs)) / static_cast<float>(ys);
                    else factor = as * bs / ys;
                    if (st == DType::F32) factor = static_cast<float>(factor);
                    std::vector<int32_t> acc;
                    const auto od = int_matmul(ec, ec.input(0), ec.input(3), azp, bzp, acc);
                    if (yzp.size() != 1) ec.fail("y_zero_point must be a scalar", "", ErrorCode::Unsupported);
                    Tensor& y = ec.output(0, yt, od);
                    visit_numeric(yt, [&](auto tag) {
                      using Q = typename decltype(tag)::type;
                      if constexpr (std::is_integral_v<Q>) {
                        Q* py = y.data<Q>();
                        for (size_t i = 0; i < acc.size(); ++i) py[i] = saturate_round<Q>(static_cast<double>(acc[i]) * factor + yzp[0]);
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
