// LSTM (ai.onnx): see rnn_common.hpp for the shared recurrent implementation.
#include "onnx/ops/rnn_common.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(lstm) {
  registry.add({"", "LSTM", [](BuildContext& ctx) { return build_recurrent(ctx, CellKind::LSTM); }}, Repro::Variant);
}
}  // namespace quiver::onnx
