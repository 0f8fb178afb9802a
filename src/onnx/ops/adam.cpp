// Adam (ai.onnx.preview.training): g = norm_coefficient * X + G; V_new = alpha V + (1 - alpha) g;
// H_new = beta H + (1 - beta) g^2; r = R * sqrt(1 - beta^T) / (1 - alpha^T) when T > 0 else R;
// X_new = (1 - norm_coefficient_post) * (X - r * V_new / (sqrt(H_new) + epsilon)).
#include "onnx/ops/optimizer.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(adam) {
  registry.add({kTrainingDomain, "Adam", optimizer_builder(2, [](BuildContext& ctx) {
                  const double alpha = ctx.attrs().get_float("alpha", 0.9f);
                  const double beta = ctx.attrs().get_float("beta", 0.999f);
                  const double eps = ctx.attrs().get_float("epsilon", 0.f);
                  const double norm = ctx.attrs().get_float("norm_coefficient", 0.f);
                  const double post = ctx.attrs().get_float("norm_coefficient_post", 0.f);
                  return [alpha, beta, eps, norm, post](double R, int64_t T, double& x, double g0, const double* s, double* so) {
                    const double g = norm * x + g0;
                    const double v = alpha * s[0] + (1 - alpha) * g;
                    const double h = beta * s[1] + (1 - beta) * g * g;
                    const double td = static_cast<double>(T);
                    const double r = T > 0 ? R * std::sqrt(1 - std::pow(beta, td)) / (1 - std::pow(alpha, td)) : R;
                    x = (1 - post) * (x - r * v / (std::sqrt(h) + eps));
                    so[0] = v;
                    so[1] = h;
                  };
                })});
}
}  // namespace quiver::onnx
