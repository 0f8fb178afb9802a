#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(reciprocal) {
  registry.add({"", "Reciprocal", unary_builder(fixed([](auto x) { return decltype(x)(1) / x; }))});
}
}  // namespace quiver::onnx
