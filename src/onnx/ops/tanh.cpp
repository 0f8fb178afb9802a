#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(tanh) {
  registry.add({"", "Tanh", unary_builder(fixed([](auto x) { return std::tanh(x); }))});
}

QUIVER_REGISTER_EMITTERS(tanh) {
  emitters.add("", "Tanh", emit_unary("std::tanh(v)"));
}
}  // namespace quiver::onnx
