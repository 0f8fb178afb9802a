#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(ceil) {
  registry.add({"", "Ceil", unary_builder(fixed([](auto x) { return std::ceil(x); }))}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(ceil) {
  emitters.add("", "Ceil", exact(emit_unary("std::ceil(v)")));
}
}  // namespace quiver::onnx
