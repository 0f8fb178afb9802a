// Mean: variadic, numpy broadcasting (float types).
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(mean) {
  registry.add({"", "Mean", variadic_builder([](auto a, auto b) { return a + b; },
                                             [](auto acc, int64_t count) { return acc / decltype(acc)(count); },
                                             /*allow_int=*/false)}, Repro::Exact);
}
}  // namespace quiver::onnx
