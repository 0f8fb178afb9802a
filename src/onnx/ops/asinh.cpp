#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(asinh) {
  registry.add({"", "Asinh", unary_builder(fixed([](auto x) { return std::asinh(x); }))});
}
}  // namespace quiver::onnx
