#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(reciprocal) {
  registry.add({"", "Reciprocal", unary_builder(fixed([](auto x) { return decltype(x)(1) / x; }))}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(reciprocal) {
  emitters.add("", "Reciprocal", exact(emit_unary("1 / v")));
}
}  // namespace quiver::onnx
