#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(sign) {
  registry.add({"", "Sign", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    if constexpr (std::is_floating_point_v<T>)
      if (std::isnan(x)) return x;
    if constexpr (std::is_unsigned_v<T>) return T(x > T(0) ? 1 : 0);
    else return T(x > T(0) ? 1 : (x < T(0) ? -1 : 0));
  }),
                                         UnaryTypes::Numeric)}, Repro::Exact);
}
}  // namespace quiver::onnx
