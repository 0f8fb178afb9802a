#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sigmoid) {
  registry.add({"", "Sigmoid", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    // Split by sign so exp never overflows.
    if (x >= T(0)) return T(T(1) / (T(1) + std::exp(-x)));
    const T e = T(std::exp(x));
    return T(e / (T(1) + e));
  }))});
}
}  // namespace quiver::onnx
