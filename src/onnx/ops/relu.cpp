#include "onnx/ops/unary.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {
QUIVER_REGISTER_OPS(relu) {
  registry.add({"", "Relu", unary_builder(fixed([](auto x) { return x > decltype(x)(0) ? x : decltype(x)(0); }),
                                         UnaryTypes::Signed)}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(relu) {
  emitters.add("", "Relu", exact(emit_unary("v > 0 ? v : 0", {DType::F32, DType::F64, DType::I64, DType::I32})));
}
}
