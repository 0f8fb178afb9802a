#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sigmoid) {
  registry.add({"", "Sigmoid", repro_unary(unary_builder(fixed([](auto x) {
    using T = decltype(x);
    // Split by sign so exp never overflows.
    if (x >= T(0)) return T(T(1) / (T(1) + std::exp(-x)));
    const T e = T(std::exp(x));
    return T(e / (T(1) + e));
  })), &repro::Kernels::sigmoid)}, Repro::Variant);
}

QUIVER_REGISTER_EMITTERS(sigmoid) {
  emitters.add("", "Sigmoid", emit_math("v >= 0 ? 1 / (1 + std::exp(-v)) : std::exp(v) / (1 + std::exp(v))", "f_sigmoid"));
}
}  // namespace quiver::onnx
