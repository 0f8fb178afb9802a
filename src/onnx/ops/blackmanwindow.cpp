// BlackmanWindow: 0.42 - 0.5 cos(2 pi n / M) + 0.08 cos(4 pi n / M).
#include "onnx/ops/signal.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(blackmanwindow) { registry.add({"", "BlackmanWindow", window_builder(0.42, 0.5, 0.08)}); }
}  // namespace quiver::onnx
