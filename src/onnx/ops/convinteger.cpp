// ConvInteger(x, w, x_zero_point?, w_zero_point?) -> int32 convolution of the zero-point-shifted inputs.
#include "onnx/ops/qconv.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(convinteger) {
  registry.add({"", "ConvInteger", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 4);
                  ctx.expect_dtype(0, {DType::I8, DType::U8});
                  ctx.expect_dtype(1, {DType::I8, DType::U8});
                  const QConvAttrs a = read_qconv_attrs(ctx);
                  ctx.set_output(0, DType::I32);
                  return make_kernel([a](ExecContext& ec) {
                    std::vector<double> xz, wz;
                    if (ec.has_input(2)) xz = as_doubles(ec.input(2));
                    if (ec.has_input(3)) wz = as_doubles(ec.input(3));
                    std::vector<int32_t> acc;
                    const auto od = qconv_run(ec, a, ec.input(0), ec.input(1), xz, wz, acc);
                    Tensor& y = ec.output(0, DType::I32, od);
                    std::copy(acc.begin(), acc.end(), y.data<int32_t>());
                  });
                }});
}
}  // namespace quiver::onnx
