// Builders for elementwise binary operators with numpy broadcasting.
#pragma once
#include "onnx/ops/common.hpp"

namespace quiver::onnx {

// Arithmetic op over numeric types (output dtype = input dtype). `f` is a generic lambda.
// F16/BF16 inputs are computed in float.
template <class F>
KernelBuilder arith_builder(F f, bool allow_int = true) {
  return [f, allow_int](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(2, 2);
    const DType t = ctx.input_dtype(0);
    if (ctx.input_dtype(1) != t)
      ctx.fail("input dtypes differ: " + std::string(dtype_name(t)) + " vs " + std::string(dtype_name(ctx.input_dtype(1))));
    if (t == DType::String || t == DType::Bool || (!allow_int && !dtype_is_float(t)))
      ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
    ctx.set_output(0, t, broadcast_static(ctx.input(0).shape, ctx.input(1).shape));
    return make_kernel([f, t](ExecContext& ec) {
      const Tensor& a = ec.input(0);
      const Tensor& b = ec.input(1);
      std::vector<int64_t> od;
      if (!broadcast_dims(a.dims(), b.dims(), od))
        ec.fail("shapes " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()) + " cannot be broadcast");
      Tensor& out = ec.output(0, t, od);
      if (t == DType::F16 || t == DType::BF16) {
        visit_dtype(t, [&](auto tag) {
          using H = typename decltype(tag)::type;
          if constexpr (std::is_same_v<H, Half> || std::is_same_v<H, BFloat16>)
            broadcast_binary<H, H, H>(a, b, out, [&](H x, H y) { return H(f(static_cast<float>(x), static_cast<float>(y))); });
        });
        return;
      }
      visit_numeric(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        broadcast_binary<T, T, T>(a, b, out, [&](T x, T y) { return static_cast<T>(f(x, y)); });
      });
    });
  };
}

// Comparison op: any numeric (and bool/string for Equal) inputs -> bool output.
template <class F>
KernelBuilder compare_builder(F f, bool allow_bool_string = false) {
  return [f, allow_bool_string](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(2, 2);
    const DType t = ctx.input_dtype(0);
    if (ctx.input_dtype(1) != t) ctx.fail("input dtypes differ");
    if (!allow_bool_string && (t == DType::Bool || t == DType::String))
      ctx.fail("unsupported dtype " + std::string(dtype_name(t)), "", ErrorCode::Unsupported);
    ctx.set_output(0, DType::Bool, broadcast_static(ctx.input(0).shape, ctx.input(1).shape));
    return make_kernel([f, t](ExecContext& ec) {
      const Tensor& a = ec.input(0);
      const Tensor& b = ec.input(1);
      std::vector<int64_t> od;
      if (!broadcast_dims(a.dims(), b.dims(), od))
        ec.fail("shapes " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()) + " cannot be broadcast");
      Tensor& out = ec.output(0, DType::Bool, od);
      visit_dtype(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
          broadcast_binary<T, T, bool>(a, b, out, [&](T x, T y) { return f(static_cast<float>(x), static_cast<float>(y)); });
        else
          broadcast_binary<T, T, bool>(a, b, out, [&](const T& x, const T& y) { return f(x, y); });
      });
    });
  };
}

}  // namespace quiver::onnx
