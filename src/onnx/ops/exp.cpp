#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(exp) {
  registry.add({"", "Exp", unary_builder(fixed([](auto x) { return std::exp(x); }))});
}

QUIVER_REGISTER_EMITTERS(exp) {
  emitters.add("", "Exp", emit_unary("std::exp(v)"));
}
}  // namespace quiver::onnx
