// CastLike(input, target_type): Cast to the element type of the second input (Cast's kernel and
// emitter, in cast.cpp).
#include "onnx/ops/mathops.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(castlike) {
  registry.add({"", "CastLike", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  const DType from = ctx.input_dtype(0);
                  const DType dst = ctx.input_dtype(1);
                  if (from == DType::Undefined || dst == DType::Undefined)
                    ctx.unsupported("CastLike with an unsupported element type");
                  ctx.set_output(0, dst, ctx.input(0).shape);
                  return cast_kernel(from, dst);
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(castlike) { emitters.add("", "CastLike", emit_cast); }
}  // namespace quiver::onnx
