#include <cmath>

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(gelu) {
  registry.add({"", "Gelu", unary_builder(
      [](BuildContext& ctx) {
        const std::string approx = ctx.attrs().get_string("approximate", "none");
        if (approx != "none" && approx != "tanh") ctx.fail("approximate must be 'none' or 'tanh', got '" + approx + "'");
        const bool use_tanh = approx == "tanh";
        return [use_tanh](auto x) {
          using T = decltype(x);
          if (use_tanh) {
            const T k = T(0.7978845608028654);  // sqrt(2/pi)
            return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
          }
          if constexpr (std::is_same_v<T, float>) return 0.5f * x * (1.f + fast_erf(x * 0.70710678f));
          else return T(0.5) * x * (T(1) + std::erf(x * T(0.7071067811865476)));
        };
      })});
}
}  // namespace quiver::onnx
