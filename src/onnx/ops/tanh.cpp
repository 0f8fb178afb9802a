#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(tanh) {
  registry.add({"", "Tanh", repro_unary(unary_builder(fixed([](auto x) { return std::tanh(x); })), &repro::Kernels::tanh)}, Repro::Variant);
}

QUIVER_REGISTER_EMITTERS(tanh) {
  emitters.add("", "Tanh", emit_math("std::tanh(v)", "f_tanh"));
}
}  // namespace quiver::onnx
