// Adagrad (ai.onnx.preview.training): r = R / (1 + T * decay_factor); g = norm_coefficient * X + G;
// H_new = H + g^2; X_new = X - r * g / (sqrt(H_new) + epsilon).
#include "onnx/ops/optimizer.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(adagrad) {
  registry.add({kTrainingDomain, "Adagrad", optimizer_builder(1, [](BuildContext& ctx) {
                  const double decay = ctx.attrs().get_float("decay_factor", 0.f);
                  const double eps = ctx.attrs().get_float("epsilon", 0.f);
                  const double norm = ctx.attrs().get_float("norm_coefficient", 0.f);
                  return [decay, eps, norm](double R, int64_t T, double& x, double g0, const double* s, double* so) {
                    const double r = R / (1.0 + static_cast<double>(T) * decay);
                    const double g = norm * x + g0;
                    const double h = s[0] + g * g;
                    x = x - r * g / (std::sqrt(h) + eps);
                    so[0] = h;
                  };
                })});
}
}  // namespace quiver::onnx
