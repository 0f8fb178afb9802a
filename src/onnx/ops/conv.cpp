// Conv (1-D/2-D/3-D, groups, dilations, strides, pads/auto_pad, optional bias, fused activation).
// Per image and group: Y_g[M_g, L] = W_g[M_g, C_g*k] x col[C_g*k, L] on the engine GEMM. Pointwise
// convolutions (1x..x1 kernel, stride 1, no padding) feed the input directly as the GEMM's B
// operand (no im2col). The weight tensor [M, C/g, k...] is already the row-major A operand.
#include "onnx/blas.hpp"
#include "onnx/emit.hpp"
#include "onnx/numerics.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/ops/nn_common.hpp"
#include "onnx/ops/norm_common.hpp"
#include "onnx/simd.hpp"

namespace quiver::onnx {

namespace {

// Direct convolution for few output channels (default numerics; ConvKernel::direct_). With M <= 8 the
// GEMM form is a product of M rows over an im2col copy (TICL energy-id: 3 x 27 x 500 per image at
// ~10 GFLOP/s, most of the model's time). Here each image is copied once into a zero-padded plane per
// channel and the outputs are computed at the padded row pitch Wp, so every kernel tap is the same
// contiguous vector shifted by a constant: 32 outputs x up to 4 channels stay in registers over all
// C x taps, one load of the input per tap. Columns past the real output width are computed and dropped.
typedef float v16f __attribute__((vector_size(64)));

template <int MB>
[[gnu::always_inline]] inline void conv_direct_block(const float* xp, int64_t C, int64_t plane, int64_t P,
                                                     const int64_t* taps, int64_t T, const float* w,
                                                     const float* bias, float* acc) {
  for (int64_t p = 0; p < P; p += 32) {
    v16f a0[MB], a1[MB];
    for (int mb = 0; mb < MB; ++mb) a0[mb] = a1[mb] = v16f{} + (bias ? bias[mb] : 0.0f);
    for (int64_t c = 0; c < C; ++c) {
      const float* xc = xp + c * plane + p;
      const float* wc = w + c * T;
      for (int64_t t = 0; t < T; ++t) {
        v16f x0, x1;
        __builtin_memcpy(&x0, xc + taps[t], sizeof x0);
        __builtin_memcpy(&x1, xc + taps[t] + 16, sizeof x1);
        for (int mb = 0; mb < MB; ++mb) {
          const float wv = wc[mb * C * T + t];
          a0[mb] += wv * x0;
          a1[mb] += wv * x1;
        }
      }
    }
    for (int mb = 0; mb < MB; ++mb) {
      __builtin_memcpy(acc + mb * P + p, &a0[mb], sizeof a0[mb]);
      __builtin_memcpy(acc + mb * P + p + 16, &a1[mb], sizeof a1[mb]);
    }
  }
}

// One image: xp [C][plane] padded (zero borders, slack after the last plane), W [M][C][T] with the
// taps' offsets in the padded plane, y [M][Ho][Wo]; acc holds 4 x P floats (P: Ho x Wp rounded to 32).
QUIVER_HOT
void conv_direct_image(const float* xp, int64_t C, int64_t plane, int64_t Wp, const int64_t* taps, int64_t T,
                       const float* W, const float* bias, int64_t M, int64_t Ho, int64_t Wo, bool relu, float* acc,
                       float* y) {
  const int64_t P = (Ho * Wp + 31) / 32 * 32;
  for (int64_t m0 = 0; m0 < M; m0 += 4) {
    const int64_t mb = std::min<int64_t>(4, M - m0);
    const float* w = W + m0 * C * T;
    const float* b = bias ? bias + m0 : nullptr;
    switch (mb) {
      case 4: conv_direct_block<4>(xp, C, plane, P, taps, T, w, b, acc); break;
      case 3: conv_direct_block<3>(xp, C, plane, P, taps, T, w, b, acc); break;
      case 2: conv_direct_block<2>(xp, C, plane, P, taps, T, w, b, acc); break;
      default: conv_direct_block<1>(xp, C, plane, P, taps, T, w, b, acc); break;
    }
    for (int64_t j = 0; j < mb; ++j)
      for (int64_t oh = 0; oh < Ho; ++oh) {
        const float* s = acc + j * P + oh * Wp;
        float* d = y + ((m0 + j) * Ho + oh) * Wo;
        if (relu)
          for (int64_t ow = 0; ow < Wo; ++ow) d[ow] = s[ow] > 0 ? s[ow] : 0;
        else
          std::copy_n(s, Wo, d);
      }
  }
}

class ConvKernel final : public Kernel {
 public:
  ConvKernel(WindowAttrs w, bool kernel_known, int64_t group, ActivationSpec act, DType t, Blas blas)
      : w_(std::move(w)), kernel_known_(kernel_known), group_(group), act_(act), t_(t), blas_(blas) {}

  const std::vector<int64_t>& strides() const { return w_.strides; }

  void run(ExecContext& ec) const override {
    const Tensor* b = ec.has_input(2) ? ec.input_ptr(2) : nullptr;
    if (t_ == DType::F32) {
      run_f32(ec, ec.input(0), ec.input(1), b, nullptr);
      return;
    }
    // Other float types (float16/bfloat16/double): compute in float.
    const Tensor x32 = to_f32(ec.input(0)), w32 = to_f32(ec.input(1));
    Tensor b32, y32;
    if (b) b32 = to_f32(*b);
    run_f32(ec, x32, w32, b ? &b32 : nullptr, &y32);
    Tensor& y = ec.output(0, t_, y32.dims());
    visit_float_family(t_, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* yp = y.data<T>();
      const float* s = y32.data<float>();
      for (int64_t i = 0; i < y.numel(); ++i) yp[i] = static_cast<T>(s[i]);
    });
  }

 private:
  static Tensor to_f32(const Tensor& t) {
    Tensor r = Tensor::empty(DType::F32, t.dims());
    visit_float_family(t.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* p = t.data<T>();
      for (int64_t i = 0; i < t.numel(); ++i) r.data<float>()[i] = static_cast<float>(to_double(p[i]));
    });
    return r;
  }

  void run_f32(ExecContext& ec, const Tensor& x, const Tensor& wt, const Tensor* b, Tensor* out32) const {
    size_t nd = w_.nd;
    if (nd == 0) {  // spatial rank unknown at load: from X
      if (x.rank() < 3 || x.rank() > 5) ec.fail("Conv supports 1 to 3 spatial dims, X is " + dims_to_string(x.dims()));
      nd = x.rank() - 2;
    }
    if (x.rank() != nd + 2) ec.fail("X must have rank " + std::to_string(nd + 2) + ", got " + dims_to_string(x.dims()));
    if (wt.rank() != nd + 2) ec.fail("W must have rank " + std::to_string(nd + 2) + ", got " + dims_to_string(wt.dims()));
    const int64_t N = x.dim(0), C = x.dim(1), M = wt.dim(0), Cg = wt.dim(1);
    if (Cg * group_ != C)
      ec.fail("input has " + std::to_string(C) + " channels but W expects " + std::to_string(Cg) + " x group " +
              std::to_string(group_));
    if (M % group_ != 0) ec.fail("output channels " + std::to_string(M) + " not divisible by group " + std::to_string(group_));
    const WindowAttrs* wa = &w_;
    WindowAttrs tmp;
    if (!kernel_known_) {
      tmp = w_;
      tmp.kernel.assign(wt.dims().begin() + 2, wt.dims().end());
      if (w_.nd == 0) {  // attributes sized at run time
        tmp.nd = nd;
        if (tmp.strides.empty()) tmp.strides.assign(nd, 1);
        if (tmp.dilations.empty()) tmp.dilations.assign(nd, 1);
        if (tmp.pads.empty()) tmp.pads.assign(2 * nd, 0);
        if (tmp.strides.size() != nd || tmp.dilations.size() != nd || tmp.pads.size() != 2 * nd)
          ec.fail("strides/dilations/pads do not match the " + std::to_string(nd) + " spatial dims of X");
        for (size_t i = 0; i < nd; ++i)
          if (tmp.strides[i] < 1 || tmp.dilations[i] < 1 || tmp.pads[i] < 0 || tmp.pads[i + nd] < 0)
            ec.fail("strides/dilations must be positive and pads non-negative");
      }
      wa = &tmp;
    } else {
      for (size_t i = 0; i < nd; ++i)
        if (wt.dim(2 + i) != w_.kernel[i]) ec.fail("W spatial dims " + dims_to_string(wt.dims()) + " differ from kernel_shape");
    }
    int64_t out[3], pads[6];
    std::string err;
    if (!window_output(*wa, x.dims().data() + 2, out, pads, &err)) ec.fail(err);
    std::vector<int64_t> ydims;
    ydims.reserve(nd + 2);
    ydims.push_back(N);
    ydims.push_back(M);
    for (size_t i = 0; i < nd; ++i) ydims.push_back(out[i]);
    if (out32) out32->ensure(DType::F32, ydims);
    Tensor& y = out32 ? *out32 : ec.output(0, DType::F32, ydims);
    if (y.numel() == 0) return;
    Geom3 g;
    make_geom3(nd, x.dims().data() + 2, out, wa->kernel.data(), wa->strides.data(), wa->dilations.data(), pads, g);
    bool pointwise = true;
    for (size_t i = 0; i < nd; ++i)
      pointwise = pointwise && wa->kernel[i] == 1 && wa->strides[i] == 1 && pads[i] == 0 && pads[i + nd] == 0;
    const int64_t L = g.out_size(), Lin = g.in_size(), Mg = M / group_, Kc = Cg * g.k_size();
    const float* bias = nullptr;
    if (b) {
      if (b->numel() != M) ec.fail("B has " + std::to_string(b->numel()) + " values, expected " + std::to_string(M));
      bias = b->data<float>();
    }
    if (direct_ && g.in[0] == 1 && g.k[0] == 1 && g.out[0] == 1 && g.s[1] == 1 && g.s[2] == 1 && group_ == 1 &&
        M <= kDirectMaxM) {
      run_direct(ec, x, wt, bias, g, N, C, M, y);
      return;
    }
    // Default numerics: the activation per image, while its output is in cache (ParticleNet at batch
    // 64: 1.6 MB per image, 105 MB for the call). Reproducible mode keeps its one pass at the end.
    const bool per_image_act = act_.kind != Activation::None && !blas_.repro();
    // Tap-wise path (one real spatial dim, stride 1, group 1, constant weights packed per tap):
    // Y[:, lo:hi] += W_t [M, C] x X[:, shifted span] for each kernel tap t, no im2col copy.
    if (!pointwise && tapw_ && group_ == 1 && g.in[0] == 1 && g.in[1] == 1 && g.k[0] == 1 && g.k[1] == 1 &&
        g.out[0] == 1 && g.out[1] == 1 && g.s[2] == 1 && g.k[2] * M * C == static_cast<int64_t>(tapw_->size()) &&
        wt.numel() == M * C * g.k[2]) {
      const float* X = x.data<float>();
      float* Y = y.data<float>();
      for (int64_t n = 0; n < N; ++n) {
        float* yn = Y + n * M * L;
        const float* xn = X + n * C * Lin;
        for (int64_t m = 0; m < M; ++m) std::fill_n(yn + m * L, L, bias ? bias[m] : 0.0f);
        for (int64_t t = 0; t < g.k[2]; ++t) {
          int64_t lo, hi;
          valid_range(g.out[2], g.in[2], 1, g.pb[2], t * g.d[2], lo, hi);
          if (hi <= lo) continue;
          GemmArgs ga;
          ga.M = M; ga.N = hi - lo; ga.K = C;
          ga.A = tapw_->data() + t * M * C; ga.lda = C;
          ga.B = xn + (lo - g.pb[2] + t * g.d[2]); ga.ldb = Lin;
          ga.C = yn + lo; ga.ldc = L;
          ga.beta = 1.0f;
          blas_.gemm(ga);
        }
        if (per_image_act) blas_.activation(yn, 1, M * L, M * L, act_);
      }
      if (!per_image_act && act_.kind != Activation::None) blas_.activation(Y, 1, y.numel(), y.numel(), act_);
      return;
    }
    float* col = pointwise ? nullptr : static_cast<float*>(ec.scratch(static_cast<size_t>(Kc * L) * sizeof(float)));
    const float* X = x.data<float>();
    const float* W = wt.data<float>();
    float* Y = y.data<float>();
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t gi = 0; gi < group_; ++gi) {
        const float* xg = X + (n * C + gi * Cg) * Lin;
        float* yg = Y + (n * M + gi * Mg) * L;
        if (bias)
          for (int64_t m = 0; m < Mg; ++m) std::fill_n(yg + m * L, L, bias[gi * Mg + m]);
        const float* B = xg;
        if (!pointwise) {
          im2col3(xg, Cg, g, col);
          B = col;
        }
        GemmArgs ga;
        ga.M = Mg; ga.N = L; ga.K = Kc;
        ga.A = W + gi * Mg * Kc; ga.lda = Kc;
        ga.B = B; ga.ldb = L;
        ga.C = yg; ga.ldc = L;
        ga.beta = bias ? 1.0f : 0.0f;
        blas_.gemm(ga);
      }
      if (per_image_act) blas_.activation(Y + n * M * L, 1, M * L, M * L, act_);
    }
    if (!per_image_act && act_.kind != Activation::None) blas_.activation(Y, 1, y.numel(), y.numel(), act_);
  }

  // The direct path over a zero-padded copy of each image (conv_direct_image); the activation other
  // than Relu as one pass per image, while it is in cache.
  void run_direct(ExecContext& ec, const Tensor& x, const Tensor& wt, const float* bias, const Geom3& g, int64_t N,
                  int64_t C, int64_t M, Tensor& y) const {
    const int64_t H = g.in[1], W = g.in[2], Ho = g.out[1], Wo = g.out[2];
    const int64_t Hp = Ho + g.d[1] * (g.k[1] - 1), Wp = Wo + g.d[2] * (g.k[2] - 1);
    const int64_t plane = Hp * Wp, T = g.k[1] * g.k[2];
    const int64_t P = (Ho * Wp + 31) / 32 * 32;
    // Past the last plane: what the dropped columns and the last block of 32 read.
    const int64_t slack = P - Ho * Wp + (g.k[1] - 1) * g.d[1] * Wp + (g.k[2] - 1) * g.d[2] + 32;
    const size_t xfloats = static_cast<size_t>(C * plane + slack), afloats = static_cast<size_t>(4 * P);
    // The taps follow the floats at an even float count: int64 needs 8-byte alignment (UBSan).
    const size_t floats = (xfloats + afloats + 1) & ~size_t{1};
    float* xp = static_cast<float*>(ec.scratch(floats * sizeof(float) + T * sizeof(int64_t)));
    float* acc = xp + xfloats;
    int64_t* taps = reinterpret_cast<int64_t*>(xp + floats);
    for (int64_t a = 0; a < g.k[1]; ++a)
      for (int64_t b = 0; b < g.k[2]; ++b) taps[a * g.k[2] + b] = a * g.d[1] * Wp + b * g.d[2];
    std::fill_n(xp, xfloats, 0.0f);  // borders and slack; the interior is overwritten per image
    // The input rows/columns inside the padded plane (pads past the input's far edge stay zero).
    const int64_t r0 = g.pb[1], c0 = g.pb[2];
    const int64_t rows = std::min(H, Hp - r0), cols = std::min(W, Wp - c0);
    const float* X = x.data<float>();
    float* Y = y.data<float>();
    const bool relu = act_.kind == Activation::Relu;
    for (int64_t n = 0; n < N; ++n) {
      const float* xn = X + n * C * H * W;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < rows; ++h) std::copy_n(xn + (c * H + h) * W, cols, xp + c * plane + (r0 + h) * Wp + c0);
      float* yn = Y + n * M * Ho * Wo;
      conv_direct_image(xp, C, plane, Wp, taps, T, wt.data<float>(), bias, M, Ho, Wo, relu, acc, yn);
      if (!relu && act_.kind != Activation::None) blas_.activation(yn, 1, M * Ho * Wo, M * Ho * Wo, act_);
    }
  }

  WindowAttrs w_;
  bool kernel_known_;
  int64_t group_;
  ActivationSpec act_;
  DType t_;
  Blas blas_;  // chosen for the target at load
 public:
  // Constant float weights [M, C, taps] repacked as [taps][M][C] (group 1 only).
  std::shared_ptr<const std::vector<float>> tapw_;
  // Default numerics, group 1, 1-D/2-D, unit strides, constant weights of at most kDirectMaxM output
  // channels and a kernel larger than 1x1: run_direct.
  static constexpr int64_t kDirectMaxM = 8;
  bool direct_ = false;
};

}  // namespace

// quiver compile: 1-D/2-D float convolution with constant weights as a gemm (rt::conv), given both the
// weights as stored (Y = W X) and W^T packed per group at compile time (Y^T = X^T W^T).
void emit_conv(Emit& e) {
  if (e.in(0).dtype != DType::F32) e.refuse("Conv is emitted for float only");
  const int r = e.rank_in(0);
  if (r != 3 && r != 4) e.refuse("only 1-D and 2-D convolutions are emitted");
  if (!e.in(1).constant) e.refuse("weights computed at run time");
  if (e.has_input(2) && !e.in(2).constant) e.refuse("bias computed at run time");
  const Tensor& w = *e.in(1).constant;
  if (w.dtype() != DType::F32) e.refuse("weights are not float");
  WindowAttrs wa;
  wa.nd = static_cast<size_t>(r - 2);
  wa.kernel = e.attrs().get_ints("kernel_shape", std::vector<int64_t>(w.dims().begin() + 2, w.dims().end()));
  read_window_attrs(e.node(), wa);
  if (wa.auto_pad == AutoPad::SameUpper || wa.auto_pad == AutoPad::SameLower) {
    if (!e.static_in(0)) e.refuse("auto_pad SAME with runtime spatial dims");
    std::vector<int64_t> in(e.in(0).shape->begin() + 2, e.in(0).shape->end()), o(wa.nd), p(2 * wa.nd);
    if (!window_output(wa, in.data(), o.data(), p.data(), nullptr)) e.refuse("window does not fit");
    wa.pads = p;
    wa.auto_pad = AutoPad::NotSet;
  } else if (wa.auto_pad == AutoPad::Valid) {
    wa.pads.assign(2 * wa.nd, 0);
    wa.auto_pad = AutoPad::NotSet;
  }
  const int64_t groups = e.attrs().get_int("group", 1);
  const bool two = r == 4;
  // 1-D is H = 1: the spatial axis is W.
  auto at = [&](const std::vector<int64_t>& v, int i2, int64_t def) { return two ? v[static_cast<size_t>(i2)] : (i2 == 0 ? def : v[0]); };
  const int64_t kh = at(wa.kernel, 0, 1), kw = at(wa.kernel, 1, 1), sh = at(wa.strides, 0, 1), sw = at(wa.strides, 1, 1);
  const int64_t dh = at(wa.dilations, 0, 1), dw = at(wa.dilations, 1, 1);
  const size_t nd = wa.nd;
  const int64_t ph0 = two ? wa.pads[0] : 0, ph1 = two ? wa.pads[nd] : 0;
  const int64_t pw0 = two ? wa.pads[1] : wa.pads[0], pw1 = two ? wa.pads[nd + 1] : wa.pads[nd];
  const int64_t M = w.dim(0);
  if (w.dim(1) * groups != (e.in(0).shape && (*e.in(0).shape)[1] >= 0 ? (*e.in(0).shape)[1] : w.dim(1) * groups))
    e.refuse("channels do not match the weights");
  const std::string H = two ? "I0.d[2]" : "1", W = two ? "I0.d[3]" : "I0.d[2]";
  const std::string OH = "((" + H + " + " + std::to_string(ph0 + ph1 - (kh - 1) * dh - 1) + ") / " + std::to_string(sh) + " + 1)";
  const std::string OW = "((" + W + " + " + std::to_string(pw0 + pw1 - (kw - 1) * dw - 1) + ") / " + std::to_string(sw) + " + 1)";
  e.shape("if (I0.d[1] != " + std::to_string(w.dim(1) * groups) + ") fail(\"input channels differ from the weights'\");\n");
  e.shape("if (" + OH + " < 1 || " + OW + " < 1) fail(\"window does not fit the input\");\n");
  if (two) e.set_dims(0, {"I0.d[0]", std::to_string(M), OH, OW});
  else e.set_dims(0, {"I0.d[0]", std::to_string(M), OW});
  const bool direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph0 == 0 && ph1 == 0 && pw0 == 0 && pw1 == 0;
  const std::string K = std::to_string(w.dim(1) * kh * kw);
  if (e.reproducible()) {
    // The kernel's paths with repro::gemm (rr::conv): the same geometry, tap-wise or im2col path and
    // order of sums; the tap-wise weights [tap][M][C] made here as ConvKernel's tapw_.
    auto n = [](int64_t v) { return std::to_string(v); };
    std::string tapw = "nullptr";
    const int64_t C = w.dim(1), T = kh * kw;
    if (groups == 1 && T > 1) {
      Tensor p = Tensor::empty(DType::F32, {T * M * C});
      for (int64_t m = 0; m < M; ++m)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t t = 0; t < T; ++t) p.data<float>()[(t * M + m) * C + c] = w.data<float>()[(m * C + c) * T + t];
      tapw = e.add_const(std::move(p));
    }
    if (!direct) e.scratch("4 * " + K + " * " + OH + " * " + OW);
    std::string c = emit_repro_activation(e.node()) + "rr::Conv a;\na.nd = " + (two ? "2" : "1") +
                    ";\na.N = I0.d[0];\na.C = I0.d[1];\na.M = " + n(M) + ";\na.groups = " + n(groups) + ";\n";
    const int64_t kk[2] = {two ? kh : kw, kw}, ss[2] = {two ? sh : sw, sw}, dd[2] = {two ? dh : dw, dw},
                  pp0[2] = {two ? ph0 : pw0, pw0}, pp1[2] = {two ? ph1 : pw1, pw1};
    for (int i = 0; i < (two ? 2 : 1); ++i) {
      const std::string I = n(i);
      c += "a.in[" + I + "] = I0.d[" + n(2 + i) + "];\na.out[" + I + "] = O0.d[" + n(2 + i) + "];\na.k[" + I + "] = " +
           n(kk[i]) + ";\na.s[" + I + "] = " + n(ss[i]) + ";\na.d[" + I + "] = " + n(dd[i]) + ";\na.pb[" + I + "] = " +
           n(pp0[i]) + ";\na.pe[" + I + "] = " + n(pp1[i]) + ";\n";
    }
    c += "a.x = x0;\na.w = x1;\na.tapw = " + tapw + ";\na.bias = " + (e.has_input(2) ? "x2" : "nullptr") +
         ";\na.y = y0;\na.col = " + (direct ? "nullptr" : "static_cast<float*>(scratch)") + ";\na.act = act;\nrr::conv(a);\n";
    e.compute(c);
    e.bitwise();
    return;
  }
  // W^T for the transposed form (rt::conv picks it from the dims) of a window other than 1x1, packed
  // per group; for a 1-D
  // convolution (also a 2-D one whose other axis is 1 with a unit kernel there) in tap-major order
  // (k = tap * Cin/groups + c), as the runtime reads the taps in place.
  const int64_t cg = w.dim(1), mg = M / groups, T = kh * kw, Kn = cg * T;
  auto sdim = [&](int i) -> int64_t {
    const auto& s = e.in(0).shape;
    return s && static_cast<int>(s->size()) > i ? (*s)[static_cast<size_t>(i)] : -1;
  };
  const bool oned = !two || (kw == 1 && pw0 == 0 && pw1 == 0 && sdim(3) == 1) || (kh == 1 && ph0 == 0 && ph1 == 0 && sdim(2) == 1);
  const bool tapmajor = oned && T > 1;
  std::string wt = "nullptr";  // a 1x1 convolution keeps Y = W X (rt::conv)
  if (!direct && tapmajor) {
    std::vector<float> r(static_cast<size_t>(M * Kn));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t t = 0; t < T; ++t) r[static_cast<size_t>(m * Kn + t * cg + c)] = w.data<float>()[(m * cg + c) * T + t];
    wt = e.add_packed_b(r.data(), Kn, mg, 1, Kn, groups, mg * Kn);
  } else if (!direct) {
    wt = e.add_packed_b(w.data<float>(), Kn, mg, 1, Kn, groups, mg * Kn);
  }
  // Scratch: the gemm's pack for the last panel of pixels, then the im2col copy or the padded input.
  e.scratch("rt::gemm_pack_bytes(" + K + ")" +
            (direct ? std::string()
                    : " + 4 * std::max<int64_t>(" + K + " * " + OH + " * " + OW + ", " + std::to_string(cg) + " * (" + H +
                          " + " + std::to_string(ph0 + ph1) + ") * (" + W + " + " + std::to_string(pw0 + pw1) + "))"));
  auto n = [](int64_t v) { return std::to_string(v); };
  e.compute(emit_activation(e.node()) + "rt::ConvArgs a;\na.N = I0.d[0];\na.C = I0.d[1];\na.H = " + H + ";\na.W = " + W +
            ";\na.M = " + n(M) + ";\na.OH = " + (two ? "O0.d[2]" : "1") + ";\na.OW = " + (two ? "O0.d[3]" : "O0.d[2]") +
            ";\na.kh = " + n(kh) + ";\na.kw = " + n(kw) + ";\na.sh = " + n(sh) + ";\na.sw = " + n(sw) + ";\na.dh = " + n(dh) +
            ";\na.dw = " + n(dw) + ";\na.ph = " + n(ph0) + ";\na.pw = " + n(pw0) + ";\na.groups = " + n(groups) +
            ";\na.x = x0;\na.w = x1;\na.wt = " + wt + ";\na.wt_taps = " + (tapmajor ? "true" : "false") + ";\na.bias = " + (e.has_input(2) ? "x2" : "nullptr") +
            ";\na.y = y0;\na.pack = static_cast<float*>(scratch);\na.col = " +
            (direct ? "nullptr" : "a.pack + rt::gemm_pack_bytes(" + K + ") / 4") + ";\na.act = act;\nrt::conv(a);\n");
}

QUIVER_REGISTER_OPS(conv) {
  registry.add({"", "Conv", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  const DType t = ctx.input_dtype(0);
                  ctx.expect_dtype(0, {DType::F32, DType::F16, DType::BF16, DType::F64});
                  ctx.expect_dtype(1, {t});
                  if (ctx.has_input(2)) ctx.expect_dtype(2, {t});
                  const auto& at = ctx.attrs();
                  WindowAttrs w;
                  std::vector<int64_t> kernel = at.get_ints("kernel_shape");
                  const ValueInfo& wi = ctx.input(1);
                  const ValueInfo& xi = ctx.input(0);
                  bool known = !kernel.empty();
                  if (!known && wi.shape && wi.shape->size() >= 3) {
                    kernel.assign(wi.shape->begin() + 2, wi.shape->end());
                    known = std::all_of(kernel.begin(), kernel.end(), [](int64_t d) { return d > 0; });
                  }
                  size_t nd = 0;
                  if (!kernel.empty()) nd = kernel.size();
                  else if (wi.shape && wi.shape->size() >= 3) nd = wi.shape->size() - 2;
                  else if (xi.shape && xi.shape->size() >= 3) nd = xi.shape->size() - 2;
                  if (nd == 0) {
                    // Spatial rank unknown until run time (no kernel_shape, W and X shapes unknown).
                    w.strides = at.get_ints("strides");
                    w.dilations = at.get_ints("dilations");
                    w.pads = at.get_ints("pads");
                    w.auto_pad = parse_auto_pad(ctx);
                    const int64_t group0 = at.get_int("group", 1);
                    if (group0 < 1) ctx.fail("group must be >= 1");
                    ctx.set_output(0, t);
                    return std::make_unique<ConvKernel>(std::move(w), false, group0, fused_activation(ctx), t, Blas(ctx.target()));
                  }
                  if (nd > 3) ctx.unsupported("Conv with " + std::to_string(nd) + " spatial dims (at most 3 supported)");
                  w.nd = nd;
                  w.kernel = known ? kernel : std::vector<int64_t>(nd, 1);
                  read_window_attrs(ctx, w);
                  if (!known) w.kernel.clear();
                  const int64_t group = at.get_int("group", 1);
                  if (group < 1) ctx.fail("group must be >= 1");
                  std::optional<std::vector<int64_t>> shape;
                  if (known && wi.shape && !wi.shape->empty()) shape = window_static_shape(w, xi, (*wi.shape)[0]);
                  ctx.set_output(0, t, shape);
                  auto k = std::make_unique<ConvKernel>(std::move(w), known, group, fused_activation(ctx), t, Blas(ctx.target()));
                  if (group == 1 && t == DType::F32 && wi.constant && wi.constant->rank() == nd + 2) {
                    const Tensor& wc = *wi.constant;
                    const int64_t M = wc.dim(0), C = wc.dim(1), T = product(wc.dims(), 2);
                    if (T > 1) {
                      auto p = std::make_shared<std::vector<float>>(static_cast<size_t>(wc.numel()));
                      for (int64_t m = 0; m < M; ++m)
                        for (int64_t c = 0; c < C; ++c)
                          for (int64_t tt = 0; tt < T; ++tt) (*p)[(tt * M + m) * C + c] = wc.data<float>()[(m * C + c) * T + tt];
                      k->tapw_ = std::move(p);
                    }
                    const auto& st = k->strides();
                    k->direct_ = !ctx.target().reproducible() && nd <= 2 && T > 1 && M <= ConvKernel::kDirectMaxM &&
                                 std::all_of(st.begin(), st.end(), [](int64_t v) { return v == 1; });
                  }
                  return k;
                }}, Repro::Variant);
}


QUIVER_REGISTER_EMITTERS(conv) {
  emitters.add("", "Conv", emit_conv);
}
}  // namespace quiver::onnx
