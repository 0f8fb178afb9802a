#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(celu) {
  registry.add({"", "Celu", unary_builder(
      [](BuildContext& ctx) {
        const float alpha = ctx.attrs().get_float("alpha", 1.f);
        if (alpha == 0.f) ctx.fail("alpha must not be 0");
        return [alpha](auto x) {
          using T = decltype(x);
          return std::max<T>(T(0), x) + std::min<T>(T(0), T(alpha) * (std::exp(x / T(alpha)) - T(1)));
        };
      })});
}
}  // namespace quiver::onnx
