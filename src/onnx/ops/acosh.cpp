#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(acosh) {
  registry.add({"", "Acosh", unary_builder(fixed([](auto x) { return std::acosh(x); }))});
}
}  // namespace quiver::onnx
