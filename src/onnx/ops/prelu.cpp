// PRelu: y = x < 0 ? slope * x : x, slope broadcast to x (unidirectional).
#include "onnx/ops/binary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(prelu) {
  registry.add({"", "PRelu", arith_builder([](auto x, auto slope) {
                  using T = decltype(x);
                  if constexpr (std::is_unsigned_v<T>) return x;
                  else return x < T(0) ? T(slope * x) : x;
                })});
}
}  // namespace quiver::onnx
