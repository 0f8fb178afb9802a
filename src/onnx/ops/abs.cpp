#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(abs) {
  registry.add({"", "Abs", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    if constexpr (std::is_unsigned_v<T>) return x;
    else return x < T(0) ? T(-x) : x;
  }),
                                         UnaryTypes::Numeric)});
}
}  // namespace quiver::onnx
