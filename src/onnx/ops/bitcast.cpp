// BitCast(to): reinterprets each element's bytes as another type of the same width (shape unchanged).
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(bitcast) {
  registry.add({"", "BitCast", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const int64_t code = ctx.attrs().req_int("to");
                  const auto to = dtype_from_onnx(static_cast<int32_t>(code));
                  if (!to) ctx.unsupported("BitCast to ONNX element type " + std::to_string(code) + " is not supported");
                  const DType from = ctx.input_dtype(0), dst = *to;
                  if (from == DType::String || dst == DType::String) ctx.fail("BitCast does not take strings");
                  if (dtype_size(from) != dtype_size(dst))
                    ctx.fail("BitCast between types of different widths (" + dt_str(from) + " -> " + dt_str(dst) + ")");
                  ctx.set_output(0, dst, ctx.input(0).shape);
                  return make_kernel([dst](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    Tensor& y = ec.output(0, dst, x.dims());
                    if (x.nbytes()) std::memcpy(y.raw(), x.raw(), x.nbytes());
                  });
                }});
}
}  // namespace quiver::onnx
