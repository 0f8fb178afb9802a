// BatchNormalization. Inference: y = x * a[c] + b[c] with a = scale / sqrt(var + eps),
// b = B - mean * a (precomputed at load when scale/B/mean/var are constant). Training mode
// (opset 14+, training_mode=1): normalises with the batch statistics and also returns the updated
// running mean/var (momentum) as outputs 1 and 2.
#include "onnx/numerics.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/emit.hpp"
#include "onnx/ops/common.hpp"
#include "onnx/simd.hpp"

namespace quiver::onnx {

namespace {

// The float form in the ISA clones. Rows of C channels (L == 1: BatchNorm after a dense layer,
// DeepJet's [B, 200] and [B, 100]) loop over the channels, which vectorises, where the general form
// runs a one-element inner loop per value. Same multiply and add per element (no contraction in
// this file), so the same bits in every clone.
QUIVER_HOT
void affine_f32(const float* x, float* y, int64_t N, int64_t C, int64_t L, const float* a, const float* b) {
  if (L == 1) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) y[n * C + c] = x[n * C + c] * a[c] + b[c];
    return;
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const float* xs = x + (n * C + c) * L;
      float* ys = y + (n * C + c) * L;
      const float av = a[c], bv = b[c];
      for (int64_t i = 0; i < L; ++i) ys[i] = xs[i] * av + bv;
    }
}

template <class T>
void affine_channels(const T* x, T* y, int64_t N, int64_t C, int64_t L, const float* a, const float* b) {
  if constexpr (std::is_same_v<T, float>) {
    affine_f32(x, y, N, C, L, a, b);
  } else {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const T* xs = x + (n * C + c) * L;
        T* ys = y + (n * C + c) * L;
        const float av = a[c], bv = b[c];
        for (int64_t i = 0; i < L; ++i) ys[i] = static_cast<T>(static_cast<float>(xs[i]) * av + bv);
      }
  }
}

template <class T>
void read_floats(const Tensor& t, float* out) {
  const T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = static_cast<float>(p[i]);
}

void read_param(const Tensor& t, float* out) {
  switch (t.dtype()) {
    case DType::F32: read_floats<float>(t, out); break;
    case DType::F64: read_floats<double>(t, out); break;
    case DType::F16: read_floats<Half>(t, out); break;
    case DType::BF16: read_floats<BFloat16>(t, out); break;
    default: throw_error(ErrorCode::InvalidArgument, "unsupported parameter dtype");
  }
}

template <class T>
void write_floats(Tensor& t, const float* v) {
  T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(v[i]);
}

void write_param(Tensor& t, const float* v) {
  switch (t.dtype()) {
    case DType::F32: write_floats<float>(t, v); break;
    case DType::F64: write_floats<double>(t, v); break;
    case DType::F16: write_floats<Half>(t, v); break;
    case DType::BF16: write_floats<BFloat16>(t, v); break;
    default: throw_error(ErrorCode::InvalidArgument, "unsupported parameter dtype");
  }
}

class BatchNormKernel final : public Kernel {
 public:
  BatchNormKernel(DType t, float eps, float momentum, bool training, std::vector<float> a, std::vector<float> b,
                  ActivationSpec act, Blas blas)
      : t_(t), eps_(eps), momentum_(momentum), training_(training), a_(std::move(a)), b_(std::move(b)), act_(act),
        blas_(blas) {}

  void run(ExecContext& ec) const override {
    const Tensor& x = ec.input(0);
    if (x.rank() < 2) ec.fail("X must have rank >= 2, got " + dims_to_string(x.dims()));
    const int64_t N = x.dim(0), C = x.dim(1), L = product(x.dims(), 2);
    for (size_t i = 1; i < 5; ++i)
      if (ec.input(i).numel() != C)
        ec.fail("parameter input " + std::to_string(i) + " has " + std::to_string(ec.input(i).numel()) +
                " values, expected " + std::to_string(C));
    Tensor& y = ec.output(0, t_, x.dims());
    float* buf = static_cast<float*>(ec.scratch(sizeof(float) * 6 * static_cast<size_t>(C)));
    float *a = buf, *b = buf + C, *sc = buf + 2 * C, *bi = buf + 3 * C, *mean = buf + 4 * C, *var = buf + 5 * C;
    if (!training_ && !a_.empty()) {
      std::copy(a_.begin(), a_.end(), a);
      std::copy(b_.begin(), b_.end(), b);
    } else {
      read_param(ec.input(1), sc);
      read_param(ec.input(2), bi);
      read_param(ec.input(3), mean);
      read_param(ec.input(4), var);
      if (training_) {
        // Batch statistics (population variance), then the running update.
        visit_float(x, [&](const auto* xp) {
          for (int64_t c = 0; c < C; ++c) {
            double s = 0, s2 = 0;
            for (int64_t n = 0; n < N; ++n) {
              const auto* xs = xp + (n * C + c) * L;
              for (int64_t i = 0; i < L; ++i) {
                const double v = static_cast<double>(static_cast<float>(xs[i]));
                s += v;
                s2 += v * v;
              }
            }
            const double cnt = static_cast<double>(N * L);
            const double m = cnt > 0 ? s / cnt : 0, v = cnt > 0 ? std::max(0.0, s2 / cnt - m * m) : 0;
            a[c] = static_cast<float>(sc[c] / std::sqrt(v + eps_));
            b[c] = static_cast<float>(bi[c] - m * a[c]);
            mean[c] = static_cast<float>(mean[c] * momentum_ + m * (1 - momentum_));
            var[c] = static_cast<float>(var[c] * momentum_ + v * (1 - momentum_));
          }
        });
        for (size_t o = 1; o < 3; ++o) {
          if (!ec.wants_output(o)) continue;
          const Tensor& ref = ec.input(o + 2);
          Tensor& out = ec.output(o, ref.dtype(), ref.dims());
          const float* src = o == 1 ? mean : var;
          write_param(out, src);
        }
      } else {
        for (int64_t c = 0; c < C; ++c) {
          a[c] = sc[c] / std::sqrt(var[c] + eps_);
          b[c] = bi[c] - mean[c] * a[c];
        }
      }
    }
    visit_float(x, [&](const auto* xp) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(xp)>>;
      affine_channels<T>(xp, y.data<T>(), N, C, L, a, b);
    });
    if (act_.kind != Activation::None && t_ == DType::F32 && blas_.repro()) {
      blas_.activation(y.data<float>(), 1, y.numel(), y.numel(), act_);
    } else if (act_.kind != Activation::None && t_ == DType::F32) {
      float* yp = y.data<float>();
      for (int64_t i = 0; i < y.numel(); ++i) {
        float& v = yp[i];
        switch (act_.kind) {
          case Activation::Relu: v = v > 0 ? v : 0; break;
          case Activation::LeakyRelu: v = v >= 0 ? v : v * act_.alpha; break;
          case Activation::Sigmoid: v = 1.0f / (1.0f + std::exp(-v)); break;
          case Activation::Tanh: v = std::tanh(v); break;
          case Activation::Clip: v = std::min(std::max(v, act_.alpha), act_.beta); break;
          default: break;
        }
      }
    }
  }

 private:
  template <class F>
  void visit_float(const Tensor& t, F&& f) const {
    switch (t.dtype()) {
      case DType::F32: f(t.data<float>()); break;
      case DType::F64: f(t.data<double>()); break;
      case DType::F16: f(t.data<Half>()); break;
      case DType::BF16: f(t.data<BFloat16>()); break;
      default: throw_error(ErrorCode::Unsupported, "unsupported dtype " + std::string(dtype_name(t.dtype())));
    }
  }
  DType t_;
  float eps_, momentum_;
  bool training_;
  std::vector<float> a_, b_;  // precomputed inference affine (empty when params are not constant)
  ActivationSpec act_;
  Blas blas_;  // reproducible numerics: its activation
};

}  // namespace

// quiver compile: inference BatchNormalization with constant parameters as y = x * a[c] + b[c].
void emit_batchnorm(Emit& e) {
  if (e.in(0).dtype != DType::F32) e.refuse("emitted for float only");
  if (e.node().opset() >= 14 && e.attrs().get_int("training_mode", 0) != 0) e.refuse("training mode");
  for (size_t i = 1; i < 5; ++i)
    if (!e.in(i).constant) e.refuse("parameters computed at run time");
  const int64_t C = e.in(1).constant->numel();
  const float eps = e.attrs().get_float("epsilon", 1e-5f);
  std::vector<float> sc(static_cast<size_t>(C)), bi(sc), mean(sc), var(sc);
  read_param(*e.in(1).constant, sc.data());
  read_param(*e.in(2).constant, bi.data());
  read_param(*e.in(3).constant, mean.data());
  read_param(*e.in(4).constant, var.data());
  Tensor a = Tensor::empty(DType::F32, {C}), b = Tensor::empty(DType::F32, {C});
  batchnorm_affine(sc.data(), bi.data(), mean.data(), var.data(), eps, C, a.data<float>(), b.data<float>());
  for (size_t i = 1; i < 5; ++i) e.dims_only(i);
  const int r = e.rank_in(0);
  if (r < 2) e.refuse("input rank below 2");
  e.same_dims(0, 0);
  const std::string ka = e.add_const(std::move(a)), kb = e.add_const(std::move(b));
  if (e.reproducible()) {
    // The kernel's a and b (the same expressions, computed here), its x * a + b in two roundings
    // (no contraction), then its reproducible activation over Y.
    e.compute(emit_repro_activation(e.node()) + "const int64_t N = " + e.din(0, 0) + ", L = " + e.span_in(0, 2, r) +
              ";\nfor (int64_t n = 0; n < N; ++n)\n  for (int64_t c = 0; c < " + std::to_string(C) +
              "; ++c) {\n    const float* xs = x0 + (n * " + std::to_string(C) + " + c) * L;\n    float* ys = y0 + (n * " +
              std::to_string(C) + " + c) * L;\n    const float av = " + ka + "[c], bv = " + kb +
              "[c];\n    for (int64_t i = 0; i < L; ++i) ys[i] = xs[i] * av + bv;\n  }\nrr::act_n(y0, N * " +
              std::to_string(C) + " * L, act);\n");
    e.bitwise();
    return;
  }
  e.compute(emit_activation(e.node()) + "const int64_t N = " + e.din(0, 0) + ", L = " + e.span_in(0, 2, r) +
            ";\nfor (int64_t n = 0; n < N; ++n)\n  for (int64_t c = 0; c < " + std::to_string(C) +
            "; ++c) {\n    const float* xs = x0 + (n * " + std::to_string(C) + " + c) * L;\n    float* ys = y0 + (n * " +
            std::to_string(C) + " + c) * L;\n    const float av = " + ka + "[c], bv = " + kb +
            "[c];\n    for (int64_t i = 0; i < L; ++i) ys[i] = act(xs[i] * av + bv);\n  }\n");
}

QUIVER_REGISTER_OPS(batchnormalization) {
  registry.add({"", "BatchNormalization", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(5, 5);
                  const std::initializer_list<DType> fl = {DType::F32, DType::F64, DType::F16, DType::BF16};
                  for (size_t i = 0; i < 5; ++i) ctx.expect_dtype(i, fl);
                  const auto& at = ctx.attrs();
                  const float eps = at.get_float("epsilon", 1e-5f);
                  const float momentum = at.get_float("momentum", 0.9f);
                  bool training = ctx.opset() >= 14 && at.get_int("training_mode", 0) != 0;
                  if (ctx.opset() < 9 && at.get_int("spatial", 1) == 0)
                    ctx.unsupported("BatchNormalization with spatial=0");
                  const DType t = ctx.input_dtype(0);
                  // Reproducible numerics: a row's output must not depend on the other rows.
                  if (training && ctx.target().reproducible())
                    ctx.unsupported("no reproducible kernel for BatchNormalization in training mode (batch statistics)");
                  ctx.set_output(0, t, ctx.input(0).shape);
                  if (training) {
                    if (ctx.num_outputs() > 1) ctx.set_output(1, ctx.input_dtype(3), ctx.input(3).shape);
                    if (ctx.num_outputs() > 2) ctx.set_output(2, ctx.input_dtype(4), ctx.input(4).shape);
                  } else {
                    for (size_t i = 1; i < ctx.num_outputs(); ++i)
                      if (!ctx.output_name(i).empty())
                        ctx.unsupported("BatchNormalization training outputs (opset " + std::to_string(ctx.opset()) + ")");
                  }
                  std::vector<float> a, b;
                  bool consts = true;
                  for (size_t i = 1; i < 5; ++i) consts = consts && ctx.input(i).constant;
                  if (consts && !training) {
                    const int64_t C = ctx.input(1).constant->numel();
                    for (size_t i = 2; i < 5; ++i)
                      if (ctx.input(i).constant->numel() != C) ctx.fail("parameter sizes differ", ctx.input_name(i));
                    std::vector<float> sc(C), bi(C), mean(C), var(C);
                    read_param(*ctx.input(1).constant, sc.data());
                    read_param(*ctx.input(2).constant, bi.data());
                    read_param(*ctx.input(3).constant, mean.data());
                    read_param(*ctx.input(4).constant, var.data());
                    a.resize(C);
                    b.resize(C);
                    for (int64_t c = 0; c < C; ++c) {
                      a[c] = sc[c] / std::sqrt(var[c] + eps);
                      b[c] = bi[c] - mean[c] * a[c];
                    }
                  }
                  return std::make_unique<BatchNormKernel>(t, eps, momentum, training, std::move(a), std::move(b),
                                                           fused_activation(ctx), Blas(ctx.target()));
                }}, Repro::Variant);
}


QUIVER_REGISTER_EMITTERS(batchnormalization) {
  emitters.add("", "BatchNormalization", emit_batchnorm);
}
}  // namespace quiver::onnx
