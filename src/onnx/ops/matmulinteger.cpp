// MatMulInteger(A, B, a_zero_point?, b_zero_point?) -> int32: (A - a_zp) @ (B - b_zp), numpy batching.
#include "onnx/ops/quant.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(matmulinteger) {
  registry.add({"", "MatMulInteger", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 4);
                  ctx.expect_dtype(0, {DType::I8, DType::U8});
                  ctx.expect_dtype(1, {DType::I8, DType::U8});
                  ctx.set_output(0, DType::I32);
                  return make_kernel([](ExecContext& ec) {
                    std::vector<double> azp, bzp;
                    if (ec.has_input(2)) azp = as_doubles(ec.input(2));
                    if (ec.has_input(3)) bzp = as_doubles(ec.input(3));
                    std::vector<int32_t> acc;
                    const auto od = int_matmul(ec, ec.input(0), ec.input(1), azp, bzp, acc);
                    Tensor& y = ec.output(0, DType::I32, od);
                    std::copy(acc.begin(), acc.end(), y.data<int32_t>());
                  });
                }});
}
}  // namespace quiver::onnx
