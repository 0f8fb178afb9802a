// GRU (ai.onnx): see rnn_common.hpp for the shared recurrent implementation.
#include "onnx/ops/rnn_common.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(gru) {
  registry.add({"", "GRU", [](BuildContext& ctx) { return build_recurrent(ctx, CellKind::GRU); }}, Repro::Variant);
}
}  // namespace quiver::onnx
