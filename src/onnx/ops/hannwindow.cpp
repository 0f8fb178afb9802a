// HannWindow: 0.5 - 0.5 cos(2 pi n / M).
#include "onnx/ops/signal.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(hannwindow) { registry.add({"", "HannWindow", window_builder(0.5, 0.5, 0.0)}); }
}  // namespace quiver::onnx
