// Binarizer (ai.onnx.ml): y = x > threshold ? 1 : 0, same type as x.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(binarizer) {
  registry.add({"ai.onnx.ml", "Binarizer", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t) && !dtype_is_integer(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  const double thr = ctx.attrs().get_float("threshold", 0.f);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, thr](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    Tensor& y = ec.output(0, t, x.dims());
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      for (int64_t i = 0; i < x.numel(); ++i)
                        py[i] = from_compute<T>(static_cast<compute_t<T>>(static_cast<double>(to_compute(px[i])) > thr ? 1 : 0));
                    });
                  });
                }});
}
}  // namespace quiver::onnx
