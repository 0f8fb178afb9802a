// Max: variadic, numpy broadcasting; NaN propagates (like numpy.maximum).
#include "onnx/ops/mathops.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(max) {
  registry.add({"", "Max", variadic_builder(
                               [](auto a, auto b) {
                                 if constexpr (std::is_floating_point_v<decltype(a)>)
                                   if (std::isnan(a) || std::isnan(b)) return a + b;
                                 return a < b ? b : a;
                               },
                               nullptr, /*allow_int=*/true)}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(max) {
  emitters.add("", "Max", [](Emit& e) {
    if (e.num_inputs() != 2) e.refuse("emitted for two inputs");
    // The kernel's expression: NaN propagates as a + b, ties (and +0 vs -0) give a.
    emit_binary(e.in(0).dtype == DType::F32 ? "a != a || b != b ? a + b : (a < b ? b : a)" : "a < b ? b : a",
                {DType::F32, DType::I64, DType::I32})(e);
    e.bitwise();
  });
}
}  // namespace quiver::onnx
