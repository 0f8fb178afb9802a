#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(acos) {
  registry.add({"", "Acos", unary_builder(fixed([](auto x) { return std::acos(x); }))});
}
}  // namespace quiver::onnx
