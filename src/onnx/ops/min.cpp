// Min: variadic, numpy broadcasting; NaN propagates (like numpy.minimum).
#include "onnx/ops/mathops.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(min) {
  registry.add({"", "Min", variadic_builder(
                               [](auto a, auto b) {
                                 if constexpr (std::is_floating_point_v<decltype(a)>)
                                   if (std::isnan(a) || std::isnan(b)) return a + b;
                                 return b < a ? b : a;
                               },
                               nullptr, /*allow_int=*/true)}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(min) {
  emitters.add("", "Min", [](Emit& e) {
    if (e.num_inputs() != 2) e.refuse("emitted for two inputs");
    emit_binary("a < b || a != a ? a : b", {DType::F32, DType::I64, DType::I32})(e);
  });
}
}  // namespace quiver::onnx
