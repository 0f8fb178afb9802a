// CumSum / CumProd(x, axis): running sum / product along the scalar `axis` input; exclusive=1 starts
// from the identity (the element itself is left out), reverse=1 runs from the end.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

template <bool Prod>
KernelBuilder cum_builder() {
  return [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(2, 2);
    const DType t = ctx.input_dtype(0);
    if (!dtype_is_float(t) && !dtype_is_integer(t))
      ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
    ctx.expect_dtype(1, {DType::I32, DType::I64});
    const bool exclusive = ctx.attrs().get_int("exclusive", 0) != 0;
    const bool reverse = ctx.attrs().get_int("reverse", 0) != 0;
    ctx.set_output(0, t, ctx.input(0).shape);
    return make_kernel([t, exclusive, reverse](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      const Tensor& at = ec.input(1);
      if (at.numel() != 1) ec.fail("axis must be a scalar, got shape " + dims_to_string(at.dims()), "axis");
      const int64_t r = static_cast<int64_t>(x.rank());
      const size_t a = static_cast<size_t>(norm_axis(read_ints(at)[0], r, &ec));
      Tensor& y = ec.output(0, t, x.dims());
      if (x.numel() == 0) return;
      const int64_t outer = r == 0 ? 1 : product(x.dims(), 0, a), n = r == 0 ? 1 : x.dim(a),
                    inner = r == 0 ? 1 : product(x.dims(), a + 1);
      visit_numeric_half(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        using C = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double, T>;
        const T* px = x.data<T>();
        T* py = y.data<T>();
        C* acc = static_cast<C*>(ec.scratch(static_cast<size_t>(inner) * sizeof(C)));
        for (int64_t o = 0; o < outer; ++o) {
          for (int64_t i = 0; i < inner; ++i) acc[i] = Prod ? C(1) : C(0);
          for (int64_t s = 0; s < n; ++s) {
            const int64_t k = reverse ? n - 1 - s : s;
            const T* p = px + (o * n + k) * inner;
            T* q = py + (o * n + k) * inner;
            for (int64_t i = 0; i < inner; ++i) {
              const C v = static_cast<C>(to_compute(p[i]));
              if (exclusive) {
                q[i] = from_compute<T>(acc[i]);
                acc[i] = Prod ? static_cast<C>(acc[i] * v) : static_cast<C>(acc[i] + v);
              } else {
                acc[i] = Prod ? static_cast<C>(acc[i] * v) : static_cast<C>(acc[i] + v);
                q[i] = from_compute<T>(acc[i]);
              }
            }
          }
        }
      });
    });
  };
}

}  // namespace

QUIVER_REGISTER_OPS(cumsum) {
  registry.add({"", "CumSum", cum_builder<false>()});
  registry.add({"", "CumProd", cum_builder<true>()});
}
}  // namespace quiver::onnx
