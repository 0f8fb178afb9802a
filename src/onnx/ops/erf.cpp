// Erf. Float (and F16/BF16) use fast_erf (a rational approximation, ~3 ulp) in a loop compiled for
// AVX-512/AVX2/baseline (GELU in transformers such as ParT is Erf-bound); double uses std::erf.
#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/mathops.hpp"
#include "onnx/simd.hpp"

namespace quiver::onnx {
namespace {
QUIVER_HOT
void erf_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fast_erf(x[i]);
}
}  // namespace

QUIVER_REGISTER_OPS(erf) {
  registry.add({"", "Erf", repro_unary(float_unary_builder(erf_array, [](double x) { return std::erf(x); }), &repro::Kernels::erf)}, Repro::Variant);
}

QUIVER_REGISTER_EMITTERS(erf) {
  emitters.add("", "Erf", emit_math("rt::erf_v(v)", "f_erf"));
}
}  // namespace quiver::onnx
