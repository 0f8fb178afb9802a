#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(leakyrelu) {
  registry.add({"", "LeakyRelu", unary_builder(
      [](BuildContext& ctx) {
        const float alpha = ctx.attrs().get_float("alpha", 0.01f);
        return [alpha](auto x) {
          using T = decltype(x);
          return x >= T(0) ? x : T(alpha) * x;
        };
      })});
}
}  // namespace quiver::onnx
