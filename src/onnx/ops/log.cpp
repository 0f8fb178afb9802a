#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(log) {
  registry.add({"", "Log", unary_builder(fixed([](auto x) { return std::log(x); }))});
}

QUIVER_REGISTER_EMITTERS(log) {
  emitters.add("", "Log", emit_unary("std::log(v)"));
}
}  // namespace quiver::onnx
