// Clip: y = min(max(x, lo), hi). Opset < 11: `min`/`max` float attributes; opset >= 11: optional
// scalar inputs 1 and 2 of x's dtype (absent bound = no bound). As numpy.clip, lo > hi gives hi.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

template <class T>
void clip_run(const Tensor& x, Tensor& y, compute_t<T> lo, compute_t<T> hi) {
  using C = compute_t<T>;
  const T* px = x.data<T>();
  T* py = y.data<T>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) {
    C v = to_compute(px[i]);
    if constexpr (std::is_floating_point_v<C>)
      if (std::isnan(v)) { py[i] = px[i]; continue; }
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    py[i] = from_compute<T>(v);
  }
}

}  // namespace

QUIVER_REGISTER_OPS(clip) {
  registry.add({"", "Clip", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t) && !dtype_is_integer(t))
                    ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  if (ctx.opset() < 11) {
                    ctx.expect_inputs(1, 1);
                    const double lo = ctx.attrs().get_float("min", -std::numeric_limits<float>::infinity());
                    const double hi = ctx.attrs().get_float("max", std::numeric_limits<float>::infinity());
                    return make_kernel([t, lo, hi](ExecContext& ec) {
                      const Tensor& x = ec.input(0);
                      Tensor& y = ec.output(0, t, x.dims());
                      visit_numeric_half(t, [&](auto tag) {
                        using T = typename decltype(tag)::type;
                        using C = compute_t<T>;
                        if constexpr (std::is_floating_point_v<C>) clip_run<T>(x, y, static_cast<C>(lo), static_cast<C>(hi));
                        else ec.fail("Clip before opset 11 takes float tensors only");
                      });
                    });
                  }
                  ctx.expect_inputs(1, 3);
                  for (size_t i = 1; i < 3; ++i)
                    if (ctx.has_input(i) && ctx.input_dtype(i) != t)
                      ctx.fail("bound dtype " + dt_str(ctx.input_dtype(i)) + " differs from input dtype " + dt_str(t), ctx.input_name(i));
                  return make_kernel([t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    Tensor& y = ec.output(0, t, x.dims());
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      using C = compute_t<T>;
                      C lo = std::numeric_limits<C>::lowest(), hi = std::numeric_limits<C>::max();
                      if constexpr (std::is_floating_point_v<C>) {
                        lo = -std::numeric_limits<C>::infinity();
                        hi = std::numeric_limits<C>::infinity();
                      }
                      for (size_t i = 1; i < 3; ++i) {
                        if (!ec.has_input(i)) continue;
                        const Tensor& b = ec.input(i);
                        if (b.numel() == 0) continue;  // empty tensor: no bound
                        if (b.numel() != 1) ec.fail("bound must be a scalar, got shape " + dims_to_string(b.dims()), "");
                        (i == 1 ? lo : hi) = to_compute(b.data<T>()[0]);
                      }
                      clip_run<T>(x, y, lo, hi);
                    });
                  });
                }}, Repro::Exact);
}
}  // namespace quiver::onnx
