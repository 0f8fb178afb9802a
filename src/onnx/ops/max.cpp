// Max: variadic, numpy broadcasting; NaN propagates (like numpy.maximum).
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(max) {
  registry.add({"", "Max", variadic_builder(
                               [](auto a, auto b) {
                                 if constexpr (std::is_floating_point_v<decltype(a)>)
                                   if (std::isnan(a) || std::isnan(b)) return a + b;
                                 return a < b ? b : a;
                               },
                               nullptr, /*allow_int=*/true)});
}
}  // namespace quiver::onnx
