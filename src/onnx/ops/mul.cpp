#include "onnx/ops/binary.hpp"
namespace quiver::onnx {
QUIVER_REGISTER_OPS(mul) { registry.add({"", "Mul", arith_builder([](auto a, auto b) { return a * b; })}); }
}
