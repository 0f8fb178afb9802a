#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(atan) {
  registry.add({"", "Atan", unary_builder(fixed([](auto x) { return std::atan(x); }))});
}
}  // namespace quiver::onnx
