#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(selu) {
  registry.add({"", "Selu", unary_builder(
      [](BuildContext& ctx) {
        const float alpha = ctx.attrs().get_float("alpha", 1.67326319217681884765625f);
        const float gamma = ctx.attrs().get_float("gamma", 1.05070102214813232421875f);
        return [alpha, gamma](auto x) {
          using T = decltype(x);
          return x > T(0) ? T(gamma) * x : T(gamma) * (T(alpha) * std::exp(x) - T(alpha));
        };
      })});
}
}  // namespace quiver::onnx
