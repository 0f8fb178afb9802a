#include <cmath>

#include "onnx/emit.hpp"
#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sign) {
  registry.add({"", "Sign", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    if constexpr (std::is_floating_point_v<T>)
      if (std::isnan(x)) return x;
    if constexpr (std::is_unsigned_v<T>) return T(x > T(0) ? 1 : 0);
    else return T(x > T(0) ? 1 : (x < T(0) ? -1 : 0));
  }),
                                         UnaryTypes::Numeric)}, Repro::Exact);
}

// NaN stays NaN (std::isnan is false for the integer types); zero gives +0 as the kernel does.
QUIVER_REGISTER_EMITTERS(sign) {
  emitters.add("", "Sign", exact(emit_unary("std::isnan(v) ? v : (v > 0 ? 1 : (v < 0 ? -1 : 0))",
                                      {DType::F32, DType::F64, DType::I64, DType::I32})));
}
}  // namespace quiver::onnx
