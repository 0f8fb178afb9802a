#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(floor) {
  registry.add({"", "Floor", unary_builder(fixed([](auto x) { return std::floor(x); }))});
}
}  // namespace quiver::onnx
