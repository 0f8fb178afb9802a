// Dropout in inference mode: output 0 views the input, optional mask output is all true (ones for
// opset < 10, where the mask has the input's type). Training mode with a non-zero ratio is random
// and reported as unsupported; training mode with ratio 0 is the identity.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

namespace {
void fill_ones(Tensor& m) {
  visit_dtype(m.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, std::string>) throw_error(ErrorCode::Unsupported, "string mask");
    else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) std::fill_n(m.data<T>(), m.numel(), T(1.f));
    else std::fill_n(m.data<T>(), m.numel(), T(1));
  });
}
}  // namespace

// quiver compile: a view of input 0 with the output's dims.
void emit_dropout(Emit& e) {
  if (e.wanted(1)) e.refuse("the mask output is not emitted");
  e.same_dims(0, 0);
  for (size_t i = 1; i < e.num_inputs(); ++i)
    if (e.has_input(i)) e.dims_only(i);
  e.view(0);
}

QUIVER_REGISTER_OPS(dropout) {
  OpDef d{"", "Dropout", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
            ctx.expect_inputs(1, 3);
            const int op = ctx.opset();
            const DType t = ctx.input_dtype(0);
            const DType mask_t = op >= 10 ? DType::Bool : t;
            ctx.set_output(0, t, ctx.input(0).shape);
            if (ctx.num_outputs() > 1 && !ctx.output_name(1).empty()) ctx.set_output(1, mask_t, ctx.input(0).shape);
            // training: 0 no, 1 yes, -1 decided per call from input 2.
            int training = 0;
            double ratio = 0.5;
            bool ratio_known = true;
            if (op < 7) {
              training = ctx.attrs().get_int("is_test", 0) == 0 ? 1 : 0;
              ratio = ctx.attrs().get_float("ratio", 0.5f);
            } else if (op < 12) {
              training = 0;
            } else {
              if (ctx.has_input(2)) {
                if (ctx.input(2).constant) training = ctx.input(2).constant->data<bool>()[0] ? 1 : 0;
                else training = -1;
              }
              if (ctx.has_input(1)) {
                if (ctx.input(1).constant) ratio = read_scalar_f64(*ctx.input(1).constant);
                else ratio_known = false;
              }
            }
            if (training == 1 && ratio_known && ratio != 0.0)
              ctx.unsupported("Dropout in training mode with ratio " + std::to_string(ratio) + " (random) is not supported");
            return make_kernel([training, mask_t](ExecContext& ec) {
              const Tensor& x = ec.input(0);
              if (training != 0) {
                bool tr = training == 1;
                if (training == -1) tr = ec.input(2).data<bool>()[0];
                if (tr) {
                  const double r = ec.has_input(1) ? read_scalar_f64(ec.input(1)) : 0.5;
                  if (r != 0.0)
                    ec.fail("Dropout in training mode with ratio " + std::to_string(r) + " (random) is not supported", "",
                            ErrorCode::Unsupported);
                }
              }
              ec.alias_output(0, 0, x.dims());
              if (ec.num_outputs() > 1 && ec.wants_output(1)) fill_ones(ec.output(1, mask_t, x.dims()));
            });
          }};
  d.aliases_input0 = true;
  registry.add(d, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(dropout) {
  emitters.add("", "Dropout", exact(emit_dropout));
}
}  // namespace quiver::onnx
