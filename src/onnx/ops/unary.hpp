// Builder for elementwise unary operators.
#pragma once
#include "onnx/ops/common.hpp"

namespace quiver::onnx {

enum class UnaryTypes { Float, Signed, Numeric };

// out = f(x) with the same dtype. F16/BF16 computed in float. `attr_reader(ctx)` returns a
// functor built from attributes (alpha etc.).
template <class MakeF>
KernelBuilder unary_builder(MakeF make_f, UnaryTypes types = UnaryTypes::Float) {
  return [make_f, types](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(1, 1);
    const DType t = ctx.input_dtype(0);
    const bool ok = dtype_is_float(t) || (types == UnaryTypes::Numeric && dtype_is_integer(t)) ||
                    (types == UnaryTypes::Signed && dtype_is_integer(t) && dtype_is_signed(t));
    if (!ok) ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
    ctx.set_output(0, t, ctx.input(0).shape);
    auto f = make_f(ctx);
    return make_kernel([f, t](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      Tensor& y = ec.output(0, t, x.dims());
      const int64_t n = x.numel();
      visit_dtype(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
          const T* px = x.data<T>();
          T* py = y.data<T>();
          for (int64_t i = 0; i < n; ++i) py[i] = T(static_cast<float>(f(static_cast<float>(px[i]))));
        } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
          const T* px = x.data<T>();
          T* py = y.data<T>();
          for (int64_t i = 0; i < n; ++i) py[i] = static_cast<T>(f(px[i]));
        } else {
          ec.fail("unsupported dtype", "", ErrorCode::Unsupported);
        }
      });
    });
  };
}

// For ops whose functor takes no attributes.
template <class F>
auto fixed(F f) {
  return [f](BuildContext&) { return f; };
}

}  // namespace quiver::onnx
