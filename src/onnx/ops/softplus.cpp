#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(softplus) {
  registry.add({"", "Softplus", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    // log(1 + exp(x)) without overflow for large x.
    return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  }))});
}
}  // namespace quiver::onnx
