#include "onnx/ops/binary.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {
// Integer division by zero is undefined in ONNX; we return 0 instead of trapping.
QUIVER_REGISTER_OPS(div) {
  registry.add({"", "Div", arith_builder([](auto a, auto b) {
                  using T = decltype(a);
                  if constexpr (std::is_integral_v<T>) return b == 0 ? T(0) : static_cast<T>(a / b);
                  else return a / b;
                })}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(div) {
  emitters.add("", "Div", exact(emit_binary("rt::div(a, b)", {DType::F32, DType::F64, DType::I64, DType::I32})));
}
}
