// HammingWindow: 25/46 - 21/46 cos(2 pi n / M).
#include "onnx/ops/signal.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(hammingwindow) { registry.add({"", "HammingWindow", window_builder(25.0 / 46.0, 21.0 / 46.0, 0.0)}); }
}  // namespace quiver::onnx
