#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(elu) {
  registry.add({"", "Elu", unary_builder(
      [](BuildContext& ctx) {
        const float alpha = ctx.attrs().get_float("alpha", 1.f);
        return [alpha](auto x) {
          using T = decltype(x);
          return x >= T(0) ? x : T(alpha) * (std::exp(x) - T(1));
        };
      })});
}
}  // namespace quiver::onnx
