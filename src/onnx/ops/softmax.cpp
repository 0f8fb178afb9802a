// Softmax / LogSoftmax / Hardmax. Opset < 13: input coerced to 2-D at `axis` (default 1), normalised
// over the flattened trailing block. Opset >= 13: along `axis` (default -1).
#include "onnx/numerics.hpp"
#include "onnx/ops/common.hpp"
#include "onnx/emit.hpp"
#include "onnx/ops/vmath.hpp"
#include "onnx/simd.hpp"

namespace quiver::onnx {

namespace {

enum class Kind { Softmax, LogSoftmax, Hardmax };

// Contiguous rows (axis is the last dim): the common case (attention scores). Max and sum run in 16
// float lanes (GCC vector type: zmm in the AVX-512 clone) and the exp loop has no reduction in it, so
// every loop vectorises (a scalar running sum kept the exp loop scalar).
typedef float v16f __attribute__((vector_size(64)));
QUIVER_HOT
void softmax_rows_f32(const float* x, float* y, int64_t rows, int64_t n, Kind kind) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* px = x + r * n;
    float* py = y + r * n;
    float mx = px[0];
    int64_t k = 1;
    if (n >= 16) {
      v16f m;
      __builtin_memcpy(&m, px, sizeof m);
      for (k = 16; k + 16 <= n; k += 16) {
        v16f v;
        __builtin_memcpy(&v, px + k, sizeof v);
        m = v > m ? v : m;
      }
      for (int l = 0; l < 16; ++l) mx = m[l] > mx ? m[l] : mx;
    }
    for (; k < n; ++k) mx = px[k] > mx ? px[k] : mx;
    for (k = 0; k < n; ++k) py[k] = vmath::exp(px[k] - mx);
    v16f acc{};
    for (k = 0; k + 16 <= n; k += 16) {
      v16f v;
      __builtin_memcpy(&v, py + k, sizeof v);
      acc += v;
    }
    float sum = 0;
    for (int l = 0; l < 16; ++l) sum += acc[l];
    for (; k < n; ++k) sum += py[k];
    if (kind == Kind::Softmax) {
      const float inv = 1.0f / sum;
      for (k = 0; k < n; ++k) py[k] *= inv;
    } else {
      const float ls = std::log(sum);
      for (k = 0; k < n; ++k) py[k] = px[k] - mx - ls;
    }
  }
}

template <class T>
void softmax_block(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, Kind kind) {
  if constexpr (std::is_same_v<T, float>) {
    // Same formula as below (inf/nan behave identically: vmath::exp(-inf) = 0, exp(nan) = nan).
    if (inner == 1 && kind != Kind::Hardmax && n > 0) {
      softmax_rows_f32(x, y, outer, n, kind);
      return;
    }
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* px = x + o * n * inner + i;
      T* py = y + o * n * inner + i;
      T mx = px[0];
      int64_t arg = 0;
      for (int64_t k = 1; k < n; ++k)
        if (px[k * inner] > mx) { mx = px[k * inner]; arg = k; }
      if (kind == Kind::Hardmax) {
        for (int64_t k = 0; k < n; ++k) py[k * inner] = k == arg ? T(1) : T(0);
        continue;
      }
      T sum = 0;
      for (int64_t k = 0; k < n; ++k) {
        const T e = std::exp(px[k * inner] - mx);
        py[k * inner] = e;
        sum += e;
      }
      if (kind == Kind::Softmax) {
        const T inv = T(1) / sum;
        for (int64_t k = 0; k < n; ++k) py[k * inner] *= inv;
      } else {
        const T ls = std::log(sum);
        for (int64_t k = 0; k < n; ++k) py[k * inner] = px[k * inner] - mx - ls;
      }
    }
  }
}

KernelBuilder builder(Kind kind) {
  return [kind](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(1, 1);
    ctx.expect_dtype(0, {DType::F32, DType::F64, DType::F16});
    const DType t = ctx.input_dtype(0);
    const bool legacy = ctx.opset() < 13;
    const int64_t axis = ctx.attrs().get_int("axis", legacy ? 1 : -1);
    ctx.set_output(0, t, ctx.input(0).shape);
    // Reproducible numerics: the ISA's table (own exp/log, sums in index order); float32/16 only.
    const repro::Kernels* rk = ctx.target().reproducible() ? &repro_kernels(ctx.target()) : nullptr;
    if (rk && (t == DType::F64 || kind == Kind::Hardmax))
      ctx.unsupported("no reproducible kernel for " + ctx.op_type() + " of " + std::string(dtype_name(t)));
    return make_kernel([kind, legacy, axis, t, rk](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      Tensor& y = ec.output(0, t, x.dims());
      const int64_t r = static_cast<int64_t>(x.rank());
      if (x.numel() == 0) return;
      const int64_t a = r == 0 ? 0 : norm_axis(axis, r, &ec);
      int64_t outer, n, inner;
      if (legacy) {
        outer = product(x.dims(), 0, static_cast<size_t>(a));
        n = product(x.dims(), static_cast<size_t>(a));
        inner = 1;
      } else {
        outer = product(x.dims(), 0, static_cast<size_t>(a));
        n = r == 0 ? 1 : x.dim(static_cast<size_t>(a));
        inner = product(x.dims(), static_cast<size_t>(a) + 1);
      }
      const auto f32 = [&](const float* px, float* py) {
        if (rk) rk->softmax(px, py, outer, n, inner, kind == Kind::LogSoftmax);
        else softmax_block(px, py, outer, n, inner, kind);
      };
      if (t == DType::F32) f32(x.data<float>(), y.data<float>());
      else if (t == DType::F64) softmax_block(x.data<double>(), y.data<double>(), outer, n, inner, kind);
      else {
        std::vector<float> xf(static_cast<size_t>(x.numel())), yf(xf.size());
        for (size_t i = 0; i < xf.size(); ++i) xf[i] = static_cast<float>(x.data<Half>()[i]);
        f32(xf.data(), yf.data());
        for (size_t i = 0; i < xf.size(); ++i) y.data<Half>()[i] = Half(yf[i]);
      }
    });
  };
}

}  // namespace

// quiver compile: opset < 13 softmaxes the flattened tail [axis:], opset >= 13 one axis.
template <bool Log>
void emit_softmax(Emit& e) {
  if (e.in(0).dtype != DType::F32) e.refuse("emitted for float only");
  const int r = e.rank_in(0);
  const bool old = e.node().opset() < 13;
  int64_t a = e.attrs().get_int("axis", old ? 1 : -1);
  if (a < 0) a += r;
  if (a < 0 || a >= std::max(r, 1)) e.refuse("axis out of range");
  const int ax = static_cast<int>(a);
  e.same_dims(0, 0);
  const std::string outer = e.span_in(0, 0, ax);
  const std::string mid = old ? e.span_in(0, ax, r) : e.din(0, ax);
  const std::string inner = old ? "1" : e.span_in(0, ax + 1, r);
  if (e.reproducible()) {  // repro::softmax (the engine's exp and log, sums in index order)
    e.compute("rr::softmax(x0, y0, " + outer + ", " + mid + ", " + inner + ", " + (Log ? "true" : "false") + ");\n");
    e.bitwise();
    return;
  }
  e.compute(std::string("rt::softmax<") + (Log ? "true" : "false") + ">(x0, y0, " + outer + ", " + mid + ", " + inner + ");\n");
}

QUIVER_REGISTER_OPS(softmax) {
  registry.add({"", "Softmax", builder(Kind::Softmax)}, Repro::Variant);
  registry.add({"", "LogSoftmax", builder(Kind::LogSoftmax)}, Repro::Variant);
  registry.add({"", "Hardmax", builder(Kind::Hardmax)});
}


QUIVER_REGISTER_EMITTERS(softmax) {
  emitters.add("", "Softmax", emit_softmax<false>);
  emitters.add("", "LogSoftmax", emit_softmax<true>);
}
}  // namespace quiver::onnx
