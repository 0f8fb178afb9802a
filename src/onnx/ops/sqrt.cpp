#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sqrt) {
  registry.add({"", "Sqrt", unary_builder(fixed([](auto x) { return std::sqrt(x); }))}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(sqrt) {
  emitters.add("", "Sqrt", exact(emit_unary("std::sqrt(v)")));
}
}  // namespace quiver::onnx
