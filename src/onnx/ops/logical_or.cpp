// Or (logical, bool with broadcasting). File named logical_or.cpp because `or` is a C++ keyword.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(logical_or) {
  registry.add({"", "Or", bool_binary_builder([](bool a, bool b) { return a || b; })}, Repro::Exact);
}
}  // namespace quiver::onnx
