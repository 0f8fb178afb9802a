// IsInf: detect_negative / detect_positive (both default 1) select which infinities count.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(isinf) {
  registry.add({"", "IsInf", predicate_builder([](BuildContext& ctx) {
                  const bool neg = ctx.attrs().get_int("detect_negative", 1) != 0;
                  const bool pos = ctx.attrs().get_int("detect_positive", 1) != 0;
                  return [neg, pos](auto x) { return std::isinf(x) && ((x > 0 && pos) || (x < 0 && neg)); };
                })});
}
}  // namespace quiver::onnx
