// Xor (logical, bool with broadcasting). File named logical_xor.cpp because `xor` is a C++ keyword.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(logical_xor) {
  registry.add({"", "Xor", bool_binary_builder([](bool a, bool b) { return a != b; })}, Repro::Exact);
}
}  // namespace quiver::onnx
