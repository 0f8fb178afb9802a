#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sqrt) {
  registry.add({"", "Sqrt", unary_builder(fixed([](auto x) { return std::sqrt(x); }))});
}
}  // namespace quiver::onnx
