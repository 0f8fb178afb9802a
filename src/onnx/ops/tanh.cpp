#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(tanh) {
  registry.add({"", "Tanh", unary_builder(fixed([](auto x) { return std::tanh(x); }))});
}
}  // namespace quiver::onnx
