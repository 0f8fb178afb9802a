// Erf. Float (and F16/BF16) use fast_erf (vectorised, ~3 ulp); double uses std::erf.
#include <cmath>

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(erf) {
  registry.add({"", "Erf", float_unary_builder(
                               [](const float* x, float* y, int64_t n) {
                                 for (int64_t i = 0; i < n; ++i) y[i] = fast_erf(x[i]);
                               },
                               [](double x) { return std::erf(x); })});
}
}  // namespace quiver::onnx
