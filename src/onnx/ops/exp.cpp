#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(exp) {
  registry.add({"", "Exp", unary_builder(fixed([](auto x) { return std::exp(x); }))});
}
}  // namespace quiver::onnx
