#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(shrink) {
  registry.add({"", "Shrink", unary_builder(
      [](BuildContext& ctx) {
        const double bias = ctx.attrs().get_float("bias", 0.f);
        const double lambd = ctx.attrs().get_float("lambd", 0.5f);
        return [bias, lambd](auto x) {
          const double v = static_cast<double>(x);
          return v < -lambd ? v + bias : (v > lambd ? v - bias : 0.0);
        };
      }, UnaryTypes::Numeric)});
}
}  // namespace quiver::onnx
