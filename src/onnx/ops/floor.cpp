#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(floor) {
  registry.add({"", "Floor", unary_builder(fixed([](auto x) { return std::floor(x); }))}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(floor) {
  emitters.add("", "Floor", exact(emit_unary("std::floor(v)")));
}
}  // namespace quiver::onnx
