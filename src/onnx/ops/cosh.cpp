#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(cosh) {
  registry.add({"", "Cosh", unary_builder(fixed([](auto x) { return std::cosh(x); }))});
}
}  // namespace quiver::onnx
