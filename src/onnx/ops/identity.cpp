// Identity (and inference-mode Dropout in dropout.cpp): output views the input, no copy.
#include "onnx/ops/common.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {
// quiver compile: a view of input 0 with the output's dims.
void emit_identity(Emit& e) {
  e.same_dims(0, 0);
  e.view(0);
}

QUIVER_REGISTER_OPS(identity) {
  OpDef d{"", "Identity", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
            ctx.expect_inputs(1, 1);
            if (ctx.input(0).constant) {
              ctx.set_output_constant(0, *ctx.input(0).constant);
              return nullptr;
            }
            ctx.set_output(0, ctx.input_dtype(0), ctx.input(0).shape);
            return make_kernel([](ExecContext& ec) { ec.alias_output(0, 0, ec.input(0).dims()); });
          }};
  d.aliases_input0 = true;
  registry.add(d, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(identity) {
  emitters.add("", "Identity", exact(emit_identity));
}
}
