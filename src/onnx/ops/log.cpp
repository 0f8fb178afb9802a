#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(log) {
  registry.add({"", "Log", unary_builder(fixed([](auto x) { return std::log(x); }))});
}
}  // namespace quiver::onnx
