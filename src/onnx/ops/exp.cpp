#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(exp) {
  registry.add({"", "Exp", repro_unary(unary_builder(fixed([](auto x) { return std::exp(x); })), &repro::Kernels::exp)}, Repro::Variant);
}

QUIVER_REGISTER_EMITTERS(exp) {
  emitters.add("", "Exp", emit_math("std::exp(v)", "f_exp"));
}
}  // namespace quiver::onnx
