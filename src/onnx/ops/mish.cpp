#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(mish) {
  registry.add({"", "Mish", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    const T sp = x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    return x * std::tanh(sp);
  }))});
}
}  // namespace quiver::onnx
