#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(atan) {
  registry.add({"", "Atan", repro_unary(unary_builder(fixed([](auto x) { return std::atan(x); })), &repro::Kernels::atan)}, Repro::Variant);
}

QUIVER_REGISTER_EMITTERS(atan) {
  emitters.add("", "Atan", emit_math("std::atan(v)", "f_atan"));
}
}  // namespace quiver::onnx
