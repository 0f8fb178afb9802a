#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(neg) {
  registry.add({"", "Neg", unary_builder(fixed([](auto x) { return decltype(x)(-x); }),
                                         UnaryTypes::Signed)}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(neg) {
  emitters.add("", "Neg", exact(emit_unary("-v", {DType::F32, DType::F64, DType::I64, DType::I32})));
}
}  // namespace quiver::onnx
