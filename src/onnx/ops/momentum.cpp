// Momentum (ai.onnx.preview.training): g = norm_coefficient * X + G; V_new = alpha * V + beta' * g with
// beta' = beta, or 1 on the first update (T == 0); "standard": X_new = X - R * V_new, "nesterov":
// X_new = X - R * (g + alpha * V_new).
#include "onnx/ops/optimizer.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(momentum) {
  registry.add({kTrainingDomain, "Momentum", optimizer_builder(1, [](BuildContext& ctx) {
                  const double alpha = ctx.attrs().get_float("alpha", 0.f);
                  const double beta = ctx.attrs().get_float("beta", 0.f);
                  const double norm = ctx.attrs().get_float("norm_coefficient", 0.f);
                  const std::string mode = ctx.attrs().get_string("mode", "standard");
                  if (mode != "standard" && mode != "nesterov") ctx.fail("mode must be standard or nesterov, got '" + mode + "'");
                  const bool nesterov = mode == "nesterov";
                  return [alpha, beta, norm, nesterov](double R, int64_t T, double& x, double g0, const double* s, double* so) {
                    const double g = norm * x + g0;
                    const double v = alpha * s[0] + (T > 0 ? beta : 1.0) * g;
                    x = nesterov ? x - R * (g + alpha * v) : x - R * v;
                    so[0] = v;
                  };
                })});
}
}  // namespace quiver::onnx
