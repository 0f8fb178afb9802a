#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(hardswish) {
  registry.add({"", "HardSwish", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    return x * std::max<T>(T(0), std::min<T>(T(1), x / T(6) + T(0.5)));
  }))});
}
}  // namespace quiver::onnx
