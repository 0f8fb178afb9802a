// LpNormalization: x / ||x||_p along `axis` (p = 1 or 2).
#include "onnx/ops/norm_common.hpp"

namespace quiver::onnx {

QUIVER_REGISTER_OPS(lpnormalization) {
  registry.add({"", "LpNormalization", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  if (!is_float_family(t)) ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
                  const int64_t axis = ctx.attrs().get_int("axis", -1), p = ctx.attrs().get_int("p", 2);
                  if (p != 1 && p != 2) ctx.fail("p must be 1 or 2, got " + std::to_string(p));
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([=](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t a = norm_axis(axis, static_cast<int64_t>(x.rank()), &ec);
                    const int64_t outer = product(x.dims(), 0, a), len = x.rank() ? x.dim(a) : 1, inner = product(x.dims(), a + 1);
                    Tensor& y = ec.output(0, t, x.dims());
                    visit_float_family(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* xp = x.data<T>();
                      T* yp = y.data<T>();
                      for (int64_t o = 0; o < outer; ++o)
                        for (int64_t i = 0; i < inner; ++i) {
                          const int64_t base = o * len * inner + i;
                          double nrm = 0;
                          for (int64_t k = 0; k < len; ++k) {
                            const double v = to_double(xp[base + k * inner]);
                            nrm += p == 1 ? std::abs(v) : v * v;
                          }
                          if (p == 2) nrm = std::sqrt(nrm);
                          for (int64_t k = 0; k < len; ++k)
                            yp[base + k * inner] = static_cast<T>(static_cast<float>(nrm > 0 ? to_double(xp[base + k * inner]) / nrm : 0.0));
                        }
                    });
                  });
                }});
}

}  // namespace quiver::onnx
