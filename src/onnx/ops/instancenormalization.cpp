// InstanceNormalization (per sample and channel) and GroupNormalization (per sample and channel
// group; scale/bias per channel from opset 21, per group before): normalise over the spatial
// dims (and the group's channels), then scale and shift per channel.
#include "onnx/ops/norm_common.hpp"

namespace quiver::onnx {

namespace {

template <bool GROUP>
KernelBuilder builder() {
  return [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(3, 3);
    const DType t = ctx.input_dtype(0);
    if (!is_float_family(t)) ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
    for (size_t i = 1; i < 3; ++i)
      if (!is_float_family(ctx.input_dtype(i))) ctx.fail("scale/bias must be floating point", ctx.input_name(i));
    const auto& at = ctx.attrs();
    const float eps = at.get_float("epsilon", 1e-5f);
    const int64_t groups = GROUP ? at.req_int("num_groups") : 0;
    if (GROUP && groups < 1) ctx.fail("num_groups must be positive");
    const int opset = ctx.opset();
    ctx.set_output(0, t, ctx.input(0).shape);
    return make_kernel([=](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      if (x.rank() < 2) ec.fail("X must have rank >= 2, got " + dims_to_string(x.dims()));
      const int64_t N = x.dim(0), C = x.dim(1), L = product(x.dims(), 2);
      const int64_t G = GROUP ? groups : C;
      if (C % G != 0) ec.fail("channels " + std::to_string(C) + " not divisible by num_groups " + std::to_string(G));
      const int64_t Cg = C / G;
      const Tensor& s = ec.input(1);
      const Tensor& b = ec.input(2);
      const bool per_group = GROUP && opset < 21 && s.numel() == G && G != C;
      const int64_t np = per_group ? G : C;
      if (s.numel() != np || b.numel() != np)
        ec.fail("scale/bias must have " + std::to_string(np) + " values, got " + std::to_string(s.numel()) + "/" +
                std::to_string(b.numel()));
      float* buf = static_cast<float*>(ec.scratch(sizeof(float) * static_cast<size_t>(2 * np + 16)));
      const int64_t pdim[1] = {np};
      broadcast_param(s, pdim, buf);
      broadcast_param(b, pdim, buf + np);
      Tensor& y = ec.output(0, t, x.dims());
      visit_float_family(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* xp = x.data<T>();
        T* yp = y.data<T>();
        const int64_t span = Cg * L;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t g = 0; g < G; ++g) {
            const T* xs = xp + (n * C + g * Cg) * L;
            T* ys = yp + (n * C + g * Cg) * L;
            double mean = 0, var = 0;
            for (int64_t i = 0; i < span; ++i) mean += to_double(xs[i]);
            mean /= static_cast<double>(span);
            for (int64_t i = 0; i < span; ++i) {
              const double d = to_double(xs[i]) - mean;
              var += d * d;
            }
            var /= static_cast<double>(span);
            const double inv = 1.0 / std::sqrt(var + static_cast<double>(eps));
            for (int64_t c = 0; c < Cg; ++c) {
              const int64_t pi = per_group ? g : g * Cg + c;
              const double sc = buf[pi], bi = buf[np + pi];
              for (int64_t i = 0; i < L; ++i)
                ys[c * L + i] = static_cast<T>(static_cast<float>((to_double(xs[c * L + i]) - mean) * inv * sc + bi));
            }
          }
      });
    });
  };
}

}  // namespace

QUIVER_REGISTER_OPS(instancenormalization) {
  registry.add({"", "InstanceNormalization", builder<false>()});
  registry.add({"", "GroupNormalization", builder<true>()});
}

}  // namespace quiver::onnx
