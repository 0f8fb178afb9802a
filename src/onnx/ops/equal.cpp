#include "onnx/ops/binary.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(equal) {
  registry.add({"", "Equal", compare_builder([](const auto& a, const auto& b) { return a == b; }, /*allow_bool_string=*/true)}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(equal) {
  emitters.add("", "Equal", exact(emit_binary("a == b", {DType::F32, DType::F64, DType::I64, DType::I32, DType::Bool})));
}
}  // namespace quiver::onnx
