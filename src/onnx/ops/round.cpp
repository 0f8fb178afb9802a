// Round: halves go to the nearest even value (std::nearbyint in the default rounding mode).
#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(round) {
  registry.add({"", "Round", unary_builder(fixed([](auto x) { return std::nearbyint(x); }))}, Repro::Exact);
}
}  // namespace quiver::onnx
