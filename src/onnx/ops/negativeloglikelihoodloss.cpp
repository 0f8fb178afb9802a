// NegativeLogLikelihoodLoss(input [N, C, d...], target [N, d...], weight [C]?): reduction none / sum /
// mean (weighted mean divides by the summed weights of the counted targets), optional ignore_index.
#include "onnx/ops/loss.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(negativeloglikelihoodloss) {
  registry.add({"", "NegativeLogLikelihoodLoss", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  loss_check_types(ctx);
                  const LossSpec spec = read_loss_spec(ctx);
                  const DType t = ctx.input_dtype(0);
                  if (spec.reduction == LossSpec::Reduction::None) ctx.set_output(0, t, ctx.input(1).shape);
                  else ctx.set_output(0, t, std::vector<int64_t>{});
                  return make_kernel([spec, t](ExecContext& ec) {
                    int64_t N, C, D;
                    const std::vector<double> x = loss_input(ec, ec.input(0), N, C, D);
                    nll_loss(ec, x.data(), N, C, D, ec.input(1), ec.has_input(2) ? &ec.input(2) : nullptr, spec, t);
                  });
                }});
}
}  // namespace quiver::onnx
