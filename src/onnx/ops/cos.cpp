#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(cos) {
  registry.add({"", "Cos", unary_builder(fixed([](auto x) { return std::cos(x); }))});
}
}  // namespace quiver::onnx
