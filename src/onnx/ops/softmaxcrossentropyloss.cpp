// SoftmaxCrossEntropyLoss(scores [N, C, d...], labels [N, d...], weights [C]?): log-softmax over C,
// then the NegativeLogLikelihoodLoss of it (reduction, ignore_index). Optional output 1: log_prob.
#include "onnx/ops/loss.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(softmaxcrossentropyloss) {
  registry.add({"", "SoftmaxCrossEntropyLoss", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  loss_check_types(ctx);
                  const LossSpec spec = read_loss_spec(ctx);
                  const DType t = ctx.input_dtype(0);
                  if (spec.reduction == LossSpec::Reduction::None) ctx.set_output(0, t, ctx.input(1).shape);
                  else ctx.set_output(0, t, std::vector<int64_t>{});
                  if (ctx.num_outputs() > 1) ctx.set_output(1, t, ctx.input(0).shape);
                  return make_kernel([spec, t](ExecContext& ec) {
                    const Tensor& scores = ec.input(0);
                    int64_t N, C, D;
                    std::vector<double> x = loss_input(ec, scores, N, C, D);
                    // In-place log-softmax along C.
                    for (int64_t n = 0; n < N; ++n) {
                      for (int64_t d = 0; d < D; ++d) {
                        double* p = x.data() + n * C * D + d;
                        double mx = -std::numeric_limits<double>::infinity();
                        for (int64_t c = 0; c < C; ++c) mx = std::max(mx, p[c * D]);
                        double s = 0;
                        for (int64_t c = 0; c < C; ++c) s += std::exp(p[c * D] - mx);
                        const double ls = std::log(s) + mx;
                        for (int64_t c = 0; c < C; ++c) p[c * D] -= ls;
                      }
                    }
                    nll_loss(ec, x.data(), N, C, D, ec.input(1), ec.has_input(2) ? &ec.input(2) : nullptr, spec, t);
                    if (ec.num_outputs() > 1 && ec.wants_output(1)) {
                      Tensor& lp = ec.output(1, t, scores.dims());
                      visit_numeric_half(t, [&](auto tag) {
                        using T = typename decltype(tag)::type;
                        T* po = lp.data<T>();
                        for (size_t i = 0; i < x.size(); ++i) po[i] = from_compute<T>(static_cast<compute_t<T>>(x[i]));
                      });
                    }
                  });
                }});
}
}  // namespace quiver::onnx
