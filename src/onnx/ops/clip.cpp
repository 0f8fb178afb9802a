// Clip: y = min(max(x, lo), hi). Opset < 11: `min`/`max` float attributes; opset >= 11: optional
// scalar inputs 1 and 2 of x's dtype (absent bound = no bound). As numpy.clip, lo > hi gives hi.
#include "onnx/emit.hpp"
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
namespace {

// quiver compile: bounds from the attributes (opset < 11) or read from inputs 1 and 2 at run time
// (absent: no bound); NaN passes through, as in the kernel.
void emit_clip(Emit& e) {
  const DType dt = e.in(0).dtype;
  const bool fp = dt == DType::F32 || dt == DType::F64;
  if (!fp && dt != DType::I64 && dt != DType::I32) e.refuse("element type " + std::string(dtype_name(dt)) + " is not emitted for Clip");
  const std::string t = e.tin(0);
  std::string lo = fp ? "-std::numeric_limits<" + t + ">::infinity()" : "std::numeric_limits<" + t + ">::lowest()";
  std::string hi = fp ? "std::numeric_limits<" + t + ">::infinity()" : "std::numeric_limits<" + t + ">::max()";
  if (e.node().opset() < 11) {
    if (!fp) e.refuse("Clip before opset 11 takes float tensors only");
    if (e.attrs().has("min")) lo = "static_cast<" + t + ">(" + cfloat(e.attrs().get_float("min", 0.0f)) + ")";
    if (e.attrs().has("max")) hi = "static_cast<" + t + ">(" + cfloat(e.attrs().get_float("max", 0.0f)) + ")";
  } else {
    for (size_t i = 1; i < 3 && i < e.num_inputs(); ++i)
      if (e.has_input(i) && e.in(i).dtype != dt) e.refuse("bound dtype differs from the input's");
    if (e.num_inputs() > 1 && e.has_input(1)) lo = "x1[0]";
    if (e.num_inputs() > 2 && e.has_input(2)) hi = "x2[0]";
  }
  e.same_dims(0, 0);
  e.compute("const " + t + " lo = " + lo + ", hi = " + hi + ";\nconst int64_t n = " + e.numel_in(0) +
            ";\nfor (int64_t j = 0; j < n; ++j) {\n  " + t + " v = x0[j];\n" +
            (fp ? "  if (!std::isnan(v)) {\n    v = v < lo ? lo : v;\n    v = v > hi ? hi : v;\n  }\n"
                : "  v = v < lo ? lo : v;\n  v = v > hi ? hi : v;\n") +
            "  y0[j] = v;\n}\n");
}

}  // namespace

QUIVER_REGISTER_EMITTERS(clip) { emitters.add("", "Clip", exact(emit_clip)); }

}  // namespace quiver::onnx
