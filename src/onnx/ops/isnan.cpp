#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(isnan) {
  registry.add({"", "IsNaN", predicate_builder([](BuildContext&) { return [](auto x) { return std::isnan(x); }; })});
}
}  // namespace quiver::onnx
