#include "onnx/ops/binary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(equal) {
  registry.add({"", "Equal", compare_builder([](const auto& a, const auto& b) { return a == b; }, /*allow_bool_string=*/true)});
}
}  // namespace quiver::onnx
