#include "onnx/ops/binary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(less) {
  registry.add({"", "Less", compare_builder([](const auto& a, const auto& b) { return a < b; })});
}
}  // namespace quiver::onnx
