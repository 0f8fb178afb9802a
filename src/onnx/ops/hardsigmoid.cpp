#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(hardsigmoid) {
  registry.add({"", "HardSigmoid", unary_builder(
      [](BuildContext& ctx) {
        const float alpha = ctx.attrs().get_float("alpha", 0.2f);
        const float beta = ctx.attrs().get_float("beta", 0.5f);
        return [alpha, beta](auto x) {
          using T = decltype(x);
          return std::max<T>(T(0), std::min<T>(T(1), T(alpha) * x + T(beta)));
        };
      })}, Repro::Exact);
}
}  // namespace quiver::onnx
