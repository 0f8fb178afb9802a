// RNN (ai.onnx): see rnn_common.hpp for the shared recurrent implementation.
#include "onnx/ops/rnn_common.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(rnn) {
  registry.add({"", "RNN", [](BuildContext& ctx) { return build_recurrent(ctx, CellKind::RNN); }});
}
}  // namespace quiver::onnx
