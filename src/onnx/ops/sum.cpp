// Sum: variadic, numpy broadcasting.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sum) {
  registry.add({"", "Sum", variadic_builder([](auto a, auto b) { return a + b; }, nullptr, /*allow_int=*/true)}, Repro::Exact);
}
}  // namespace quiver::onnx
