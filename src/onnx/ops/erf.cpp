#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(erf) {
  registry.add({"", "Erf", unary_builder(fixed([](auto x) { return std::erf(x); }))});
}
}  // namespace quiver::onnx
