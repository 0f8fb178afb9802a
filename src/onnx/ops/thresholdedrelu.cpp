#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(thresholdedrelu) {
  registry.add({"", "ThresholdedRelu", unary_builder(
      [](BuildContext& ctx) {
        const float alpha = ctx.attrs().get_float("alpha", 1.f);
        return [alpha](auto x) {
          using T = decltype(x);
          return x > T(alpha) ? x : T(0);
        };
      })});
}
}  // namespace quiver::onnx
