#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sin) {
  registry.add({"", "Sin", unary_builder(fixed([](auto x) { return std::sin(x); }))});
}
}  // namespace quiver::onnx
