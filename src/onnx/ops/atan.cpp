#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(atan) {
  registry.add({"", "Atan", unary_builder(fixed([](auto x) { return std::atan(x); }))});
}

QUIVER_REGISTER_EMITTERS(atan) {
  emitters.add("", "Atan", emit_unary("std::atan(v)"));
}
}  // namespace quiver::onnx
