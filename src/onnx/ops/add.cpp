#include "onnx/ops/binary.hpp"
namespace quiver::onnx {
QUIVER_REGISTER_OPS(add) { registry.add({"", "Add", arith_builder([](auto a, auto b) { return a + b; })}); }
}
