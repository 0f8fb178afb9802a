#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(atanh) {
  registry.add({"", "Atanh", unary_builder(fixed([](auto x) { return std::atanh(x); }))});
}
}  // namespace quiver::onnx
