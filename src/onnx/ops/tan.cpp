#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(tan) {
  registry.add({"", "Tan", unary_builder(fixed([](auto x) { return std::tan(x); }))});
}
}  // namespace quiver::onnx
