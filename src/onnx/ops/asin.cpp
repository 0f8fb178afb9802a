#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(asin) {
  registry.add({"", "Asin", unary_builder(fixed([](auto x) { return std::asin(x); }))});
}
}  // namespace quiver::onnx
