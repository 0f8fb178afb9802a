#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(abs) {
  registry.add({"", "Abs", unary_builder(fixed([](auto x) {
    using T = decltype(x);
    // Floats clear the sign bit (fabs): |-0| is +0 and a negative NaN comes out positive, as in
    // numpy, ONNX Runtime and the CUDA kernel (fabsf), so all targets give the same bits.
    if constexpr (std::is_unsigned_v<T>) return x;
    else if constexpr (std::is_floating_point_v<T>) return T(std::fabs(x));
    else return x < T(0) ? T(-x) : x;
  }),
                                         UnaryTypes::Numeric)}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(abs) {
  // The kernel's operations per type: fabs for floats (clears the sign bit), a compare for integers.
  const Emitter floats = emit_unary("std::fabs(v)", {DType::F32, DType::F64});
  const Emitter ints = emit_unary("v < 0 ? -v : v", {DType::I64, DType::I32});
  emitters.add("", "Abs", exact([floats, ints](Emit& e) {
    const DType t = e.in(0).dtype;
    (t == DType::F32 || t == DType::F64 ? floats : ints)(e);
  }));
}
}  // namespace quiver::onnx
