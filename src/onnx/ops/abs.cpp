#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(abs) {
  registry.add({"", "Abs", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    if constexpr (std::is_unsigned_v<T>) return x;
    else return x < T(0) ? T(-x) : x;
  }),
                                         UnaryTypes::Numeric)}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(abs) {
  // The kernel's expression (not std::abs): -0 and a negative NaN keep their sign bit, as in the engine.
  emitters.add("", "Abs", exact(emit_unary("v < 0 ? -v : v", {DType::F32, DType::F64, DType::I64, DType::I32})));
}
}  // namespace quiver::onnx
