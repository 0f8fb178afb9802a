// And (logical, bool with broadcasting). File named logical_and.cpp because `and` is a C++ keyword.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(logical_and) {
  registry.add({"", "And", bool_binary_builder([](bool a, bool b) { return a && b; })}, Repro::Exact);
}
}  // namespace quiver::onnx
