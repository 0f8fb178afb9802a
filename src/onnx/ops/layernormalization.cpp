// LayerNormalization (opset 17; optional Mean / InvStdDev outputs) and RMSNormalization (opset 23):
// normalise over the trailing dims starting at `axis`, then scale (and bias). Scale/bias broadcast
// to the normalised shape.
#include "onnx/emit.hpp"
#include "onnx/ops/norm_common.hpp"
#include "onnx/simd.hpp"

namespace quiver::onnx {

namespace {

// Float rows (stash_type float, the common case; transformers such as ParT normalise every token):
// sums in 16 float lanes (GCC vector type: zmm in the AVX-512 clone), mean first, then the variance
// of the centred values as the unfused graph computes it. mean/inv (optional) get one value per row.
typedef float v16f __attribute__((vector_size(64)));
QUIVER_HOT
void norm_rows_f32(bool rms, const float* x, float* y, int64_t outer, int64_t inner, const float* sc,
                   const float* bi, float eps, float* mean_out, float* inv_out) {
  const float n = static_cast<float>(inner);
  for (int64_t o = 0; o < outer; ++o) {
    const float* xs = x + o * inner;
    float* ys = y + o * inner;
    float mean = 0;
    int64_t i = 0;
    if (!rms) {
      v16f acc{};
      for (; i + 16 <= inner; i += 16) {
        v16f v;
        __builtin_memcpy(&v, xs + i, sizeof v);
        acc += v;
      }
      float s = 0;
      for (int k = 0; k < 16; ++k) s += acc[k];
      for (; i < inner; ++i) s += xs[i];
      mean = s / n;
    }
    v16f acc{};
    i = 0;
    for (; i + 16 <= inner; i += 16) {
      v16f d;
      __builtin_memcpy(&d, xs + i, sizeof d);
      d -= mean;
      acc += d * d;
    }
    float var = 0;
    for (int k = 0; k < 16; ++k) var += acc[k];
    for (; i < inner; ++i) var += (xs[i] - mean) * (xs[i] - mean);
    var /= n;
    const float inv = 1.0f / std::sqrt(var + eps);
    if (bi) {
      for (i = 0; i < inner; ++i) ys[i] = (xs[i] - mean) * inv * sc[i] + bi[i];
    } else {
      for (i = 0; i < inner; ++i) ys[i] = (xs[i] - mean) * inv * sc[i];
    }
    if (mean_out) mean_out[o] = mean;
    if (inv_out) inv_out[o] = inv;
  }
}

template <bool RMS>
KernelBuilder norm_builder() {
  return [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(2, RMS ? 2 : 3);
    const DType t = ctx.input_dtype(0);
    if (!is_float_family(t)) ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
    for (size_t i = 1; i < ctx.num_inputs(); ++i)
      if (ctx.has_input(i) && !is_float_family(ctx.input_dtype(i))) ctx.fail("scale/bias must be floating point", ctx.input_name(i));
    const auto& at = ctx.attrs();
    const int64_t axis = at.get_int("axis", -1);
    const float eps = at.get_float("epsilon", 1e-5f);
    const int64_t stash = at.get_int("stash_type", 1);
    const DType stash_t = stash == 1 ? DType::F32 : t;
    ctx.set_output(0, t, ctx.input(0).shape);
    std::optional<std::vector<int64_t>> sshape;
    if (ctx.input(0).shape) {
      const int64_t r = static_cast<int64_t>(ctx.input(0).shape->size());
      const int64_t a = axis < 0 ? axis + r : axis;
      if (a < 0 || a >= r) ctx.fail("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(r));
      sshape = *ctx.input(0).shape;
      for (int64_t i = a; i < r; ++i) (*sshape)[i] = 1;
    }
    if (!RMS) {
      ctx.set_output(1, stash_t, sshape);
      ctx.set_output(2, stash_t, sshape);
    }
    return make_kernel([=](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      const int64_t r = static_cast<int64_t>(x.rank());
      const int64_t a = norm_axis(axis, r, &ec);
      const int64_t outer = product(x.dims(), 0, a), inner = product(x.dims(), a);
      std::span<const int64_t> nshape(x.dims().data() + a, x.rank() - a);
      const bool has_b = !RMS && ec.has_input(2) && ec.input_ptr(2);
      float* buf = static_cast<float*>(ec.scratch(sizeof(float) * static_cast<size_t>(2 * inner + 16)));
      float* sc = buf;
      float* bi = buf + inner;
      if (!broadcast_param(ec.input(1), nshape, sc))
        ec.fail("Scale of shape " + dims_to_string(ec.input(1).dims()) + " does not broadcast to " + dims_to_string(nshape));
      if (has_b && !broadcast_param(ec.input(2), nshape, bi))
        ec.fail("B of shape " + dims_to_string(ec.input(2).dims()) + " does not broadcast to " + dims_to_string(nshape));
      Tensor& y = ec.output(0, t, x.dims());
      std::vector<int64_t> sd(x.dims());
      for (int64_t i = a; i < r; ++i) sd[i] = 1;
      Tensor* mt = (!RMS && ec.wants_output(1)) ? &ec.output(1, stash_t, sd) : nullptr;
      Tensor* it = (!RMS && ec.wants_output(2)) ? &ec.output(2, stash_t, sd) : nullptr;
      if (t == DType::F32 && stash_t == DType::F32) {
        norm_rows_f32(RMS, x.data<float>(), y.data<float>(), outer, inner, sc, has_b ? bi : nullptr, eps,
                           mt ? mt->data<float>() : nullptr, it ? it->data<float>() : nullptr);
        return;
      }
      visit_float_family(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* xp = x.data<T>();
        T* yp = y.data<T>();
        for (int64_t o = 0; o < outer; ++o) {
          const T* xs = xp + o * inner;
          T* ys = yp + o * inner;
          double mean = 0, var = 0;
          if (!RMS) {
            for (int64_t i = 0; i < inner; ++i) mean += to_double(xs[i]);
            mean /= static_cast<double>(inner);
          }
          for (int64_t i = 0; i < inner; ++i) {
            const double d = to_double(xs[i]) - mean;
            var += d * d;
          }
          var /= static_cast<double>(inner);
          const double inv = 1.0 / std::sqrt(var + static_cast<double>(eps));
          for (int64_t i = 0; i < inner; ++i) {
            const double v = (to_double(xs[i]) - mean) * inv * sc[i] + (has_b ? bi[i] : 0.0);
            ys[i] = static_cast<T>(static_cast<float>(v));
          }
          auto put = [&](Tensor* out, double v) {
            if (!out) return;
            visit_float_family(out->dtype(), [&](auto t2) {
              using U = typename decltype(t2)::type;
              out->data<U>()[o] = static_cast<U>(static_cast<float>(v));
            });
          };
          put(mt, mean);
          put(it, inv);
        }
      });
    });
  };
}

// quiver compile (default numerics): float rows with float scale/bias of the normalised dims
// (rt::layer_norm; the fusion pass makes this op of ParT's decomposed LayerNorms for the emitter too).
void emit_layer_norm(Emit& e) {
  if (e.reproducible()) e.refuse("LayerNormalization has no reproducible emission");
  for (size_t i = 0; i < e.num_inputs(); ++i)
    if (e.has_input(i) && e.in(i).dtype != DType::F32) e.refuse("emitted for float only");
  if (e.attrs().get_int("stash_type", 1) != 1) e.refuse("emitted for stash_type 1 (float) only");
  if (e.wanted(1) || e.wanted(2)) e.refuse("the Mean / InvStdDev outputs are not emitted");
  const int r = e.rank_in(0);
  int64_t a = e.attrs().get_int("axis", -1);
  if (a < 0) a += r;
  if (a < 0 || a >= r) e.refuse("axis out of range");
  const bool bias = e.has_input(2);
  const std::string inner = e.span_in(0, static_cast<int>(a), r), as = std::to_string(a);
  // Scale and bias: the normalised dims (leading 1s allowed): no broadcasting inside them.
  std::string check;
  const std::string rs = std::to_string(r);
  for (int i = 1; i <= (bias ? 2 : 1); ++i) {
    const std::string I = "I" + std::to_string(i);
    check += "for (int j = 1; j <= " + I + ".r; ++j) if (" + I + ".d[" + I + ".r - j] != (j <= " + rs + " - " + as +
             " ? I0.d[" + rs + " - j] : 1)) fail(\"scale and bias must have the normalised dims\");\n";
  }
  e.shape(check);
  e.same_dims(0, 0);
  e.compute("rt::layer_norm(x0, y0, " + e.span_in(0, 0, static_cast<int>(a)) + ", " + inner + ", x1, " +
            (bias ? "x2" : "nullptr") + ", " + cfloat(e.attrs().get_float("epsilon", 1e-5f)) + ");\n");
}

}  // namespace

QUIVER_REGISTER_OPS(layernormalization) {
  registry.add({"", "LayerNormalization", norm_builder<false>()});
  registry.add({"", "RMSNormalization", norm_builder<true>()});
}

QUIVER_REGISTER_EMITTERS(layernormalization) { emitters.add("", "LayerNormalization", emit_layer_norm); }

}  // namespace quiver::onnx
