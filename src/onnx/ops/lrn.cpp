// LRN: y = x / (bias + alpha / size * sum of x^2 over neighbouring channels)^beta.
#include "onnx/ops/norm_common.hpp"

namespace quiver::onnx {

QUIVER_REGISTER_OPS(lrn) {
  registry.add({"", "LRN", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  if (!is_float_family(t)) ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
                  const auto& at = ctx.attrs();
                  const int64_t size = at.req_int("size");
                  if (size < 1) ctx.fail("size must be positive");
                  const double alpha = at.get_float("alpha", 1e-4f), beta = at.get_float("beta", 0.75f), bias = at.get_float("bias", 1.0f);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([=](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() < 2) ec.fail("X must have rank >= 2");
                    const int64_t N = x.dim(0), C = x.dim(1), L = product(x.dims(), 2);
                    const int64_t lo = (size - 1) / 2, hi = size - 1 - lo;  // floor / ceil of (size-1)/2
                    Tensor& y = ec.output(0, t, x.dims());
                    visit_float_family(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* xp = x.data<T>();
                      T* yp = y.data<T>();
                      for (int64_t n = 0; n < N; ++n)
                        for (int64_t c = 0; c < C; ++c)
                          for (int64_t i = 0; i < L; ++i) {
                            double s = 0;
                            for (int64_t cc = std::max<int64_t>(0, c - lo); cc <= std::min(C - 1, c + hi); ++cc) {
                              const double v = to_double(xp[(n * C + cc) * L + i]);
                              s += v * v;
                            }
                            const int64_t idx = (n * C + c) * L + i;
                            yp[idx] = static_cast<T>(static_cast<float>(to_double(xp[idx]) / std::pow(bias + alpha / size * s, beta)));
                          }
                    });
                  });
                }});
}

}  // namespace quiver::onnx
