#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(bitwisenot) {
  registry.add({"", "BitwiseNot", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_integer(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    Tensor& y = ec.output(0, t, x.dims());
                    visit_numeric(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if constexpr (std::is_integral_v<T>) {
                        const T* px = x.data<T>();
                        T* py = y.data<T>();
                        for (int64_t i = 0, n = x.numel(); i < n; ++i) py[i] = static_cast<T>(~px[i]);
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
