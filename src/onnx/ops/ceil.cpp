#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(ceil) {
  registry.add({"", "Ceil", unary_builder(fixed([](auto x) { return std::ceil(x); }))});
}
}  // namespace quiver::onnx
