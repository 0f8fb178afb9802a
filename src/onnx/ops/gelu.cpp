// Gelu (opset 20; also what the fusion pass makes of PyTorch's Div/Erf/Add/Mul/Mul export). The exact
// form on float runs a loop compiled for AVX-512/AVX2/baseline around fast_erf (as Erf does); the
// tanh approximation and double use the plain element functor.
#include <cmath>

#include "onnx/emit.hpp"
#include "onnx/ops/mathops.hpp"
#include "onnx/simd.hpp"

namespace quiver::onnx {
namespace {
QUIVER_HOT
void gelu_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.f + fast_erf(v * 0.70710678f));
  }
}

KernelBuilder gelu_builder() {
  const KernelBuilder exact = float_unary_builder(gelu_array, [](double x) { return 0.5 * x * (1 + std::erf(x * 0.7071067811865476)); });
  const KernelBuilder approx = unary_builder([](BuildContext&) {
    return [](auto x) {
      using T = decltype(x);
      const T k = T(0.7978845608028654);  // sqrt(2/pi)
      return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
    };
  });
  return [exact, approx](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    const std::string a = ctx.attrs().get_string("approximate", "none");
    if (a != "none" && a != "tanh") ctx.fail("approximate must be 'none' or 'tanh', got '" + a + "'");
    return a == "tanh" ? approx(ctx) : exact(ctx);
  };
}
// quiver compile (default numerics; the fusion pass makes this op of PyTorch's exact-GELU export for the
// emitter too): one pass with the runtime's vectorizable erf_v / tanh_v.
void emit_gelu(Emit& e) {
  if (e.reproducible()) e.refuse("Gelu has no reproducible emission");
  const std::string a = e.attrs().get_string("approximate", "none");
  if (a == "tanh")
    emit_unary("rt::gelu_tanh_v(v)", {DType::F32})(e);
  else if (a == "none")
    emit_unary("rt::gelu_v(v)", {DType::F32})(e);
  else
    e.refuse("approximate must be 'none' or 'tanh', got '" + a + "'");
}
}  // namespace

QUIVER_REGISTER_OPS(gelu) { registry.add({"", "Gelu", gelu_builder()}); }
QUIVER_REGISTER_EMITTERS(gelu) { emitters.add("", "Gelu", emit_gelu); }
}  // namespace quiver::onnx
