#include "onnx/ops/binary.hpp"
namespace quiver::onnx {
QUIVER_REGISTER_OPS(sub) { registry.add({"", "Sub", arith_builder([](auto a, auto b) { return a - b; })}); }
}
