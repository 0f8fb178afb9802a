// Shared by the ai.onnx.preview.training optimizers (Adagrad, Momentum, Adam): inputs R (learning
// rate scalar), T (update count scalar), then `groups` lists of n tensors each (X..., G..., state...);
// outputs X_new... followed by the new states. `step(r, t, x, g, s_in, s_out)` updates one element in
// double precision: x is in/out, s_in / s_out hold the per-element state values.
#pragma once
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {

constexpr const char* kTrainingDomain = "ai.onnx.preview.training";

inline double as_double_scalar(ExecContext& ec, size_t i) {
  const Tensor& t = ec.input(i);
  if (t.numel() != 1) ec.fail("expected a scalar, got shape " + dims_to_string(t.dims()));
  double v = 0;
  convert_elements(t.dtype(), t.raw(), DType::F64, &v, 1);
  return v;
}

template <class MakeStep>
KernelBuilder optimizer_builder(size_t n_states, MakeStep make_step) {
  return [n_states, make_step](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    const size_t groups = 2 + n_states;  // X, G, states
    if (ctx.num_inputs() < 2 + groups || (ctx.num_inputs() - 2) % groups != 0)
      ctx.fail("expected R, T and " + std::to_string(groups) + " equally long lists of tensors, got " +
               std::to_string(ctx.num_inputs()) + " inputs");
    const size_t n = (ctx.num_inputs() - 2) / groups;
    if (ctx.num_outputs() > n * (1 + n_states)) ctx.fail("too many outputs");
    for (size_t i = 2; i < ctx.num_inputs(); ++i)
      if (!dtype_is_float(ctx.input_dtype(i))) ctx.fail("tensors must be float", ctx.input_name(i), ErrorCode::Unsupported);
    for (size_t o = 0; o < ctx.num_outputs(); ++o) {
      const size_t src = 2 + (o < n ? o : n + o);  // X_i -> X input, state outputs -> state inputs
      ctx.set_output(o, ctx.input_dtype(src), ctx.input(src).shape);
    }
    auto step = make_step(ctx);
    return make_kernel([n, n_states, step](ExecContext& ec) {
      const double r = as_double_scalar(ec, 0);
      const int64_t t = read_ints(ec.input(1))[0];
      for (size_t k = 0; k < n; ++k) {
        const Tensor& x = ec.input(2 + k);
        const Tensor& g = ec.input(2 + n + k);
        if (g.numel() != x.numel()) ec.fail("gradient shape differs from its tensor", "G");
        std::vector<const Tensor*> sin(n_states);
        for (size_t s = 0; s < n_states; ++s) {
          sin[s] = &ec.input(2 + (2 + s) * n + k);
          if (sin[s]->numel() != x.numel()) ec.fail("state shape differs from its tensor");
        }
        const int64_t m = x.numel();
        std::vector<double> xv(static_cast<size_t>(m)), gv(xv.size());
        std::vector<std::vector<double>> sv(n_states, std::vector<double>(xv.size())), so = sv;
        convert_elements(x.dtype(), x.raw(), DType::F64, xv.data(), m);
        convert_elements(g.dtype(), g.raw(), DType::F64, gv.data(), m);
        for (size_t s = 0; s < n_states; ++s) convert_elements(sin[s]->dtype(), sin[s]->raw(), DType::F64, sv[s].data(), m);
        double si[4] = {}, sout[4] = {};
        for (int64_t i = 0; i < m; ++i) {
          for (size_t s = 0; s < n_states; ++s) si[s] = sv[s][static_cast<size_t>(i)];
          step(r, t, xv[static_cast<size_t>(i)], gv[static_cast<size_t>(i)], si, sout);
          for (size_t s = 0; s < n_states; ++s) so[s][static_cast<size_t>(i)] = sout[s];
        }
        if (k < ec.num_outputs() && ec.wants_output(k)) {
          Tensor& y = ec.output(k, x.dtype(), x.dims());
          convert_elements(DType::F64, xv.data(), x.dtype(), y.raw(), m);
        }
        for (size_t s = 0; s < n_states; ++s) {
          const size_t o = n + s * n + k;
          if (o < ec.num_outputs() && ec.wants_output(o)) {
            Tensor& y = ec.output(o, sin[s]->dtype(), sin[s]->dims());
            convert_elements(DType::F64, so[s].data(), sin[s]->dtype(), y.raw(), m);
          }
        }
      }
    });
  };
}

}  // namespace quiver::onnx
