// Mod(A, B) with broadcasting. fmod=0 (default): the result takes the sign of the divisor (Python /
// numpy.mod); fmod=1: C fmod, the sign of the dividend. Integer division by zero is an error.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(mod) {
  registry.add({"", "Mod", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  const DType t = ctx.input_dtype(0);
                  if (ctx.input_dtype(1) != t) ctx.fail("input dtypes differ: " + dt_str(t) + " vs " + dt_str(ctx.input_dtype(1)));
                  if (!dtype_is_float(t) && !dtype_is_integer(t))
                    ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  const bool cmod = ctx.attrs().get_int("fmod", 0) != 0;
                  ctx.set_output(0, t, broadcast_static(ctx.input(0).shape, ctx.input(1).shape));
                  return make_kernel([t, cmod](ExecContext& ec) {
                    const Tensor& a = ec.input(0);
                    const Tensor& b = ec.input(1);
                    std::vector<int64_t> od;
                    if (!broadcast_dims(a.dims(), b.dims(), od))
                      ec.fail("shapes " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()) + " cannot be broadcast");
                    Tensor& out = ec.output(0, t, od);
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      using C = compute_t<T>;
                      if constexpr (std::is_integral_v<T>) {
                        const T* pb = b.data<T>();
                        for (int64_t i = 0, n = b.numel(); i < n; ++i)
                          if (pb[i] == T(0)) ec.fail("integer modulo by zero", "B");
                        broadcast_binary<T, T, T>(a, b, out, [cmod](T x, T y) {
                          if constexpr (std::is_signed_v<T>) {
                            if (y == T(-1)) return T(0);  // avoids INT_MIN % -1 overflow
                            T r = static_cast<T>(x % y);
                            if (!cmod && r != 0 && ((r < 0) != (y < 0))) r = static_cast<T>(r + y);
                            return r;
                          } else {
                            return static_cast<T>(x % y);
                          }
                        });
                      } else {
                        broadcast_binary<T, T, T>(a, b, out, [cmod](T xs, T ys) {
                          const C x = to_compute(xs), y = to_compute(ys);
                          C r = std::fmod(x, y);
                          if (!cmod && r != C(0) && ((r < C(0)) != (y < C(0)))) r += y;
                          return from_compute<T>(r);
                        });
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
