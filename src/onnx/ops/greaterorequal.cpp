#include "onnx/ops/binary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(greaterorequal) {
  registry.add({"", "GreaterOrEqual", compare_builder([](const auto& a, const auto& b) { return a >= b; })});
}
}  // namespace quiver::onnx
