// Swish (opset 24): x * sigmoid(alpha * x).
#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(swish) {
  registry.add({"", "Swish", unary_builder(
      [](BuildContext& ctx) {
        const float alpha = ctx.attrs().get_float("alpha", 1.f);
        return [alpha](auto x) {
          using T = decltype(x);
          const T z = T(alpha) * x;
          const T s = z >= T(0) ? T(1) / (T(1) + std::exp(-z)) : std::exp(z) / (T(1) + std::exp(z));
          return x * s;
        };
      })});
}
}  // namespace quiver::onnx
