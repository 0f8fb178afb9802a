#include "onnx/ops/unary.hpp"
namespace quiver::onnx {
QUIVER_REGISTER_OPS(relu) {
  registry.add({"", "Relu", unary_builder(fixed([](auto x) { return x > decltype(x)(0) ? x : decltype(x)(0); }),
                                         UnaryTypes::Signed)});
}
}
