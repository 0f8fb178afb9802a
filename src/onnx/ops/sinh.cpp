#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sinh) {
  registry.add({"", "Sinh", unary_builder(fixed([](auto x) { return std::sinh(x); }))});
}
}  // namespace quiver::onnx
