#include <cmath>

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(softsign) {
  registry.add({"", "Softsign", unary_builder(fixed([](auto x) { return x / (decltype(x)(1) + decltype(x)(std::fabs(x))); }))}, Repro::Exact);
}
}  // namespace quiver::onnx
