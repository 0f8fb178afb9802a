#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(neg) {
  registry.add({"", "Neg", unary_builder(fixed([](auto x) { return decltype(x)(-x); }),
                                         UnaryTypes::Signed)});
}
}  // namespace quiver::onnx
