#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(log) {
  registry.add({"", "Log", repro_unary(unary_builder(fixed([](auto x) { return std::log(x); })), &repro::Kernels::log)}, Repro::Variant);
}

QUIVER_REGISTER_EMITTERS(log) {
  emitters.add("", "Log", emit_math("std::log(v)", "f_log"));
}
}  // namespace quiver::onnx
