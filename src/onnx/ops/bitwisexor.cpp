#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(bitwisexor) {
  registry.add({"", "BitwiseXor", int_binary_builder([](auto a, auto b) { return a ^ b; })});
}
}  // namespace quiver::onnx
