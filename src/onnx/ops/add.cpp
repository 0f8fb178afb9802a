#include "onnx/ops/binary.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {
QUIVER_REGISTER_OPS(add) { registry.add({"", "Add", arith_builder([](auto a, auto b) { return a + b; })}, Repro::Exact); }

QUIVER_REGISTER_EMITTERS(add) {
  emitters.add("", "Add", exact(emit_binary("a + b", {DType::F32, DType::F64, DType::I64, DType::I32})));
}
}
