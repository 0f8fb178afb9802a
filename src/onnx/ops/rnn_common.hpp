// Shared implementation of the recurrent operators LSTM, GRU and RNN (ai.onnx).
//
// Directions forward/reverse/bidirectional, layout 0/1, sequence_lens, initial_h/initial_c,
// LSTM peepholes and input_forget, GRU linear_before_reset, activations/activation_alpha/beta, clip.
// Per direction: the input projection of all time steps is one GEMM
// (X[T*B, I] x W^T[I, G*H] + biases), then each step runs H_{t-1}[B, H] x R^T[H, G*H] and the
// elementwise gate update. W^T and R^T are packed at load when constant.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "onnx/blas.hpp"
#include "onnx/numerics.hpp"
#include "onnx/ops/common.hpp"

namespace quiver::onnx {

enum class CellKind { RNN, GRU, LSTM };

enum class RnnAct { Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus };

struct RnnActivation {
  RnnAct kind = RnnAct::Sigmoid;
  float alpha = 0, beta = 0;
};

inline float rnn_act1(float x, const RnnActivation& a) {
  switch (a.kind) {
    case RnnAct::Relu: return x > 0 ? x : 0;
    case RnnAct::Tanh: return std::tanh(x);
    case RnnAct::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case RnnAct::Affine: return a.alpha * x + a.beta;
    case RnnAct::LeakyRelu: return x >= 0 ? x : a.alpha * x;
    case RnnAct::ThresholdedRelu: return x > a.alpha ? x : 0;
    case RnnAct::ScaledTanh: return a.alpha * std::tanh(a.beta * x);
    case RnnAct::HardSigmoid: return std::max(0.0f, std::min(1.0f, a.alpha * x + a.beta));
    case RnnAct::Elu: return x >= 0 ? x : a.alpha * (std::exp(x) - 1);
    case RnnAct::Softsign: return x / (1 + std::abs(x));
    case RnnAct::Softplus: return std::log1p(std::exp(-std::abs(x))) + std::max(x, 0.0f);
  }
  return x;
}

// The default-numerics hot loops, defined in src/onnx/rnn_kernels.cpp (x86-64-v4/v3/baseline clones,
// the one recurrent file compiled with fused multiply-adds). Vectorised in-place sigmoid / tanh
// (polynomial exp, |rel err| ~1e-7).
void rnn_sigmoid_inplace(float* x, int64_t n);
void rnn_tanh_inplace(float* x, int64_t n);
// y[0:N] = x[0:K] x B[K, N] (row stride ldb): the batch-1 recurrent step, accumulating in registers.
void rnn_gemv(const float* x, int64_t K, const float* B, int64_t ldb, int64_t N, float* y);
// The same product from a panel-major copy of B (N >= 16): rnn_gemv_pack writes it into out (when
// not null) and returns its size in floats, a multiple of 16; rnn_gemv_packed reads it.
int64_t rnn_gemv_pack(const float* B, int64_t K, int64_t ldb, int64_t N, float* out);
void rnn_gemv_packed(const float* x, int64_t K, const float* P, int64_t N, float* y);
// The LSTM's batched step in the transposed layout (default numerics, default activations; see
// RecurrentKernel::run_lstm_batched): g holds the gate pre-activations as 4H rows [i, o, f, c] of B
// columns (row stride ld), bias one value per row. lstm_gates_t: i, o, f = sigmoid(g + bias),
// c = tanh(g + bias), in place. lstm_cell_t: c = f * c + i * g, h = o * tanh(c), both [H, B].
void lstm_gates_t(float* g, int64_t H, int64_t B, int64_t ld, const float* bias);
void lstm_cell_t(const float* g, int64_t H, int64_t B, int64_t ld, float* c, float* h);
// The GRU's (linear_before_reset = 0) batched step, same layout (RecurrentKernel::run_gru_batched):
// g holds 3H rows [z, r, h] of B columns. gru_gates_t: z, r = f(g + bias) in place, f the logistic
// sigmoid or (hard) max(0, min(1, alpha x + beta)); then rh [H, B] = r * h. gru_cell_t: the h rows
// hold the h gate's products; hn = (1 - z) * tanh(g + bias) + z * h, [H, B].
void gru_gates_t(float* g, int64_t H, int64_t B, int64_t ld, const float* bias, bool hard, float alpha, float beta,
                 const float* h, float* rh);
void gru_cell_t(const float* g, int64_t H, int64_t B, int64_t ld, const float* bias, const float* h, float* hn);

// In-place activation over n values; `rk`: the reproducible kernels (numerics=reproducible), whose
// sigmoid and tanh replace the polynomial clones (the other activations used there are exact).
inline void rnn_act(float* x, int64_t n, const RnnActivation& a, const repro::Kernels* rk = nullptr) {
  if (rk && a.kind == RnnAct::Sigmoid) return rk->sigmoid(x, x, n);
  if (rk && a.kind == RnnAct::Tanh) return rk->tanh(x, x, n);
  switch (a.kind) {
    case RnnAct::Sigmoid:
      rnn_sigmoid_inplace(x, n);
      break;
    case RnnAct::Tanh:
      rnn_tanh_inplace(x, n);
      break;
    case RnnAct::Relu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0 ? x[i] : 0;
      break;
    case RnnAct::HardSigmoid: {  // Keras GRU/LSTM gates (DeepDoubleX): a branch-free loop that vectorises
      const float al = a.alpha, be = a.beta;
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(0.0f, std::min(1.0f, al * x[i] + be));
      break;
    }
    default:
      for (int64_t i = 0; i < n; ++i) x[i] = rnn_act1(x[i], a);
  }
}

class RecurrentKernel final : public Kernel {
 public:
  struct Config {
    CellKind kind = CellKind::LSTM;
    int64_t hidden = 0, dirs = 1, gates = 4;
    bool reverse_only = false;  // direction == "reverse"
    int layout = 0;
    float clip = 0;  // 0: none
    bool input_forget = false, linear_before_reset = false;
    std::vector<RnnActivation> acts;  // per direction: count_per_dir() entries
    Blas blas;                        // GEMMs and sigmoid/tanh for the target
    // Packed constant weights (empty when W/R are not constant): per direction W^T [I, G*H], R^T [H, G*H].
    std::vector<float> wt, rt;
    int64_t input_size = -1;
    // LSTM in default numerics with the default activations, no clip, no input_forget: batches of
    // kBatchedRows or more rows run run_lstm_batched (when there are no peepholes and every sequence
    // is T long).
    bool lstm_batched = false;
    // GRU with linear_before_reset = 0, no clip, gates sigmoid or hard sigmoid and tanh, in default
    // numerics: the same batches run run_gru_batched.
    bool gru_batched = false;
    std::vector<float> wr;  // a batched form with constant W and R: per direction [W | R], [G*H, I + H]
    // Default numerics, constant R, H >= 16: R^T panel-major for the one-row GEMV (rnn_gemv_pack),
    // per direction rp_stride floats apart from the first 64-byte boundary in rp; GRU with
    // linear_before_reset 0 as two products ([z, r] columns, then h's at rp_h), else one of G*H.
    std::vector<float> rp;
    int64_t rp_stride = 0, rp_h = 0;
    // Set when the CPU engine reads a Gather(..., -1)'s last step from Y_h instead of Y (fusion.cpp
    // lstm_last_step): that Gather, whose index has no step to take when T is 0.
    std::string last_step_of;
  };
  static constexpr int64_t kBatchedRows = 16;

  explicit RecurrentKernel(Config c) : c_(std::move(c)) {}

  void run(ExecContext& ec) const override {
    const Tensor& x = ec.input(0);
    const Tensor& w = ec.input(1);
    const Tensor& r = ec.input(2);
    const int64_t H = c_.hidden, G = c_.gates, GH = G * H, D = c_.dirs;
    if (x.rank() != 3) ec.fail("X must be 3-D, got " + dims_to_string(x.dims()));
    const int64_t T = c_.layout == 0 ? x.dim(0) : x.dim(1);
    const int64_t B = c_.layout == 0 ? x.dim(1) : x.dim(0);
    const int64_t I = x.dim(2);
    if (T == 0 && !c_.last_step_of.empty())  // the graph as written fails there; Y_h would be h0
      ec.fail("the last step of a sequence of 0 steps: " + c_.last_step_of + "'s index -1 is out of range for an axis of size 0");
    if (w.rank() != 3 || w.dim(0) != D || w.dim(1) != GH || w.dim(2) != I)
      ec.fail("W must be [" + std::to_string(D) + ", " + std::to_string(GH) + ", " + std::to_string(I) + "], got " +
              dims_to_string(w.dims()));
    if (r.rank() != 3 || r.dim(0) != D || r.dim(1) != GH || r.dim(2) != H)
      ec.fail("R must be [" + std::to_string(D) + ", " + std::to_string(GH) + ", " + std::to_string(H) + "], got " +
              dims_to_string(r.dims()));
    const Tensor* bias = opt(ec, 3);
    if (bias && bias->numel() != D * 2 * GH)
      ec.fail("B must be [" + std::to_string(D) + ", " + std::to_string(2 * GH) + "], got " + dims_to_string(bias->dims()));
    const Tensor* seq = opt(ec, 4);
    if (seq && seq->numel() != B) ec.fail("sequence_lens must have " + std::to_string(B) + " values");
    const Tensor* h0 = opt(ec, 5);
    if (h0 && h0->numel() != D * B * H) ec.fail("initial_h must have " + std::to_string(D * B * H) + " values");
    const Tensor* c0 = c_.kind == CellKind::LSTM ? opt(ec, 6) : nullptr;
    if (c0 && c0->numel() != D * B * H) ec.fail("initial_c must have " + std::to_string(D * B * H) + " values");
    const Tensor* peep = c_.kind == CellKind::LSTM ? opt(ec, 7) : nullptr;
    if (peep && peep->numel() != D * 3 * H) ec.fail("P must have " + std::to_string(D * 3 * H) + " values");

    // Outputs.
    Tensor* y = nullptr;
    if (ec.wants_output(0)) {
      if (c_.layout == 0) y = &ec.output(0, DType::F32, {T, D, B, H});
      else y = &ec.output(0, DType::F32, {B, T, D, H});
    }
    Tensor* yh = nullptr;
    Tensor* yc = nullptr;
    if (ec.wants_output(1)) yh = c_.layout == 0 ? &ec.output(1, DType::F32, {D, B, H}) : &ec.output(1, DType::F32, {B, D, H});
    if (c_.kind == CellKind::LSTM && ec.wants_output(2))
      yc = c_.layout == 0 ? &ec.output(2, DType::F32, {D, B, H}) : &ec.output(2, DType::F32, {B, D, H});

    std::vector<int64_t> lens(static_cast<size_t>(B), T);
    if (seq) {
      lens = read_ints(*seq);
      for (int64_t l : lens)
        if (l < 0 || l > T) ec.fail("sequence_lens value " + std::to_string(l) + " outside [0, " + std::to_string(T) + "]");
    }
    const SubnormalsAsZero flush(!c_.blas.repro());  // default numerics only (numerics.hpp)
    if (c_.lstm_batched && !peep && B >= kBatchedRows && T > 0 &&
        std::all_of(lens.begin(), lens.end(), [T](int64_t l) { return l == T; })) {
      run_lstm_batched(ec, x, w, r, bias, h0, c0, y, yh, yc, T, B, I);
      return;
    }
    if (c_.gru_batched && B >= kBatchedRows && T > 0 &&
        std::all_of(lens.begin(), lens.end(), [T](int64_t l) { return l == T; })) {
      run_gru_batched(ec, x, w, r, bias, h0, y, yh, T, B, I);
      return;
    }

    if (y) std::fill_n(y->data<float>(), y->numel(), 0.0f);  // steps past a sequence's end stay zero
    // Scratch: xw [T*B, GH], hp [B, GH], h [B, H], c [B, H], tmp [B, H], packed weights if needed.
    const bool packed = !c_.wt.empty();
    const size_t n_xw = T * B * GH, n_hp = B * GH, n_bh = B * H;
    const size_t n_w = packed ? 0 : static_cast<size_t>(I * GH + H * GH);
    float* base = static_cast<float*>(ec.scratch(sizeof(float) * (n_xw + n_hp + 3 * n_bh + n_w + 64)));
    float* xw = base;
    float* hp = xw + n_xw;
    float* h = hp + n_hp;
    float* c = h + n_bh;
    float* tmp = c + n_bh;
    float* wbuf = tmp + n_bh;

    const float* X = x.data<float>();
    const size_t per_dir_acts = c_.acts.size() / static_cast<size_t>(D);
    for (int64_t d = 0; d < D; ++d) {
      const bool reverse = c_.reverse_only || d == 1;
      const float *wt, *rt;
      if (packed) {
        if (I != c_.input_size) ec.fail("X has input size " + std::to_string(I) + ", W was packed for " + std::to_string(c_.input_size));
        wt = c_.wt.data() + d * I * GH;
        rt = c_.rt.data() + d * H * GH;
      } else {
        float* wtp = wbuf;
        float* rtp = wbuf + I * GH;
        transpose_into(w.data<float>() + d * GH * I, GH, I, wtp, GH);
        transpose_into(r.data<float>() + d * GH * H, GH, H, rtp, GH);
        wt = wtp;
        rt = rtp;
      }
      const float* wb = bias ? bias->data<float>() + d * 2 * GH : nullptr;
      const float* rb = wb ? wb + GH : nullptr;
      // Input projection for all steps: rows are X rows in memory order ([T,B] or [B,T]).
      GemmArgs g;
      g.M = T * B; g.N = GH; g.K = I;
      g.A = X; g.lda = I; g.B = wt; g.ldb = GH; g.C = xw; g.ldc = GH;
      c_.blas.gemm(g);
      if (wb) {
        // Fold W bias and (except GRU's h-gate with linear_before_reset) R bias into xw.
        for (int64_t row = 0; row < T * B; ++row) {
          float* p = xw + row * GH;
          for (int64_t j = 0; j < GH; ++j) {
            const bool keep_rb = c_.kind == CellKind::GRU && c_.linear_before_reset && j >= 2 * H;
            p[j] += wb[j] + (keep_rb ? 0.0f : rb[j]);
          }
        }
      }
      // Initial state.
      for (int64_t b = 0; b < B; ++b) {
        const int64_t off = state_offset(d, b, D, B, H);
        for (int64_t k = 0; k < H; ++k) {
          h[b * H + k] = h0 ? h0->data<float>()[off + k] : 0.0f;
          c[b * H + k] = c0 ? c0->data<float>()[off + k] : 0.0f;
        }
      }
      const RnnActivation* acts = c_.acts.data() + d * per_dir_acts;
      const float* pd = peep ? peep->data<float>() + d * 3 * H : nullptr;
      const float* rbh = (c_.kind == CellKind::GRU && c_.linear_before_reset && rb) ? rb + 2 * H : nullptr;
      for (int64_t s = 0; s < T; ++s) {
        // Recurrent projection for all batch rows.
        if (c_.kind == CellKind::GRU && !c_.linear_before_reset) {
          gru_step_batched(s, T, B, reverse, lens, xw, rt, packed_r(d), hp, h, tmp, acts, y, d, D);
          continue;
        }
        mm(h, B, H, rt, GH, GH, hp, GH, packed_r(d));
        for (int64_t b = 0; b < B; ++b) {
          if (s >= lens[b]) continue;
          const int64_t t = reverse ? lens[b] - 1 - s : s;
          const float* xr = xw + row_of(t, b, T, B) * GH;
          float* hr = hp + b * GH;
          float* hb = h + b * H;
          float* cb = c + b * H;
          const int64_t nx = c_.kind == CellKind::GRU ? 2 * H : GH;  // GRU's h gate is combined in step_row
          for (int64_t j = 0; j < nx; ++j) hr[j] += xr[j];
          step_row(hr, hb, cb, xr, rbh, pd, acts, tmp + b * H);
          if (y) {
            std::copy_n(hb, H, y->data<float>() + y_offset(t, d, b, T, D, B, H));
          }
        }
      }
      for (int64_t b = 0; b < B; ++b) {
        const int64_t off = state_offset(d, b, D, B, H);
        if (yh) std::copy_n(h + b * H, H, yh->data<float>() + off);
        if (yc) std::copy_n(c + b * H, H, yc->data<float>() + off);
      }
    }
  }

 private:
  static const Tensor* opt(ExecContext& ec, size_t i) {
    if (!ec.has_input(i)) return nullptr;
    const Tensor* t = ec.input_ptr(i);
    return t && t->numel() > 0 ? t : nullptr;
  }
  int64_t state_offset(int64_t d, int64_t b, int64_t D, int64_t B, int64_t H) const {
    return c_.layout == 0 ? (d * B + b) * H : (b * D + d) * H;
  }
  int64_t row_of(int64_t t, int64_t b, int64_t T, int64_t B) const { return c_.layout == 0 ? t * B + b : b * T + t; }
  // Y is [T, D, B, H] (layout 0) or [B, T, D, H] (layout 1).
  int64_t y_offset(int64_t t, int64_t d, int64_t b, int64_t T, int64_t D, int64_t B, int64_t H) const {
    return c_.layout == 0 ? ((t * D + d) * B + b) * H : ((b * T + t) * D + d) * H;
  }

  // Direction d's panel-major R^T (Config::rp), null when there is none.
  const float* packed_r(int64_t d) const {
    if (c_.rp.empty()) return nullptr;
    return c_.rp.data() + line_offset(c_.rp.data()) + d * c_.rp_stride;
  }

  // C[B, n] = A[B, k] x Bm[k, n] with ldb; `packed`: the same Bm columns from Config::rp.
  void mm(const float* a, int64_t m, int64_t k, const float* bm, int64_t ldb, int64_t n, float* cm, int64_t ldc,
          const float* packed) const {
    if (m == 1 && !c_.blas.repro()) {  // reproducible: the same GEMM for every batch size
      if (packed) rnn_gemv_packed(a, k, packed, n, cm);
      else rnn_gemv(a, k, bm, ldb, n, cm);
      return;
    }
    GemmArgs g;
    g.M = m; g.N = n; g.K = k;
    g.A = a; g.lda = k; g.B = bm; g.ldb = ldb; g.C = cm; g.ldc = ldc;
    c_.blas.gemm(g);
  }

  // GRU with linear_before_reset = 0 (h gate = g(x Wh + (r . h) Rh + b)), one step for all batch
  // rows: the (r . h) x Rh^T product is one [B, H] x [H, H] GEMM instead of B row-by-row products.
  void gru_step_batched(int64_t s, int64_t T, int64_t B, bool reverse, const std::vector<int64_t>& lens,
                        const float* xw, const float* rt, const float* rp, float* hp, float* h, float* tmp,
                        const RnnActivation* acts, Tensor* y, int64_t d, int64_t D) const {
    const int64_t H = c_.hidden, GH = c_.gates * H;
    const RnnActivation &f = acts[0], &gg = acts[1];
    mm(h, B, H, rt, GH, 2 * H, hp, GH, rp);  // z, r gates
    for (int64_t b = 0; b < B; ++b) {
      float* hr = hp + b * GH;
      float* tb = tmp + b * H;
      if (s >= lens[b]) {
        std::fill_n(tb, H, 0.0f);
        continue;
      }
      const int64_t t = reverse ? lens[b] - 1 - s : s;
      const float* xr = xw + row_of(t, b, T, B) * GH;
      for (int64_t j = 0; j < 2 * H; ++j) hr[j] += xr[j];
      if (c_.clip > 0)
        for (int64_t j = 0; j < 2 * H; ++j) hr[j] = clipv(hr[j]);
      rnn_act(hr, 2 * H, f, c_.blas.repro());  // z and r
      const float* hb = h + b * H;
      for (int64_t k = 0; k < H; ++k) tb[k] = hr[H + k] * hb[k];
    }
    mm(tmp, B, H, rt + 2 * H, GH, H, hp + 2 * H, GH, rp ? rp + c_.rp_h : nullptr);  // (r . h) x Rh^T
    for (int64_t b = 0; b < B; ++b) {
      if (s >= lens[b]) continue;
      const int64_t t = reverse ? lens[b] - 1 - s : s;
      const float* xh = xw + row_of(t, b, T, B) * GH + 2 * H;
      float* hr = hp + b * GH;
      float* gz = hr;
      float* gh = hr + 2 * H;
      float* hb = h + b * H;
      for (int64_t k = 0; k < H; ++k) gh[k] += xh[k];
      if (c_.clip > 0)
        for (int64_t k = 0; k < H; ++k) gh[k] = clipv(gh[k]);
      rnn_act(gh, H, gg, c_.blas.repro());
      for (int64_t k = 0; k < H; ++k) hb[k] = (1.0f - gz[k]) * gh[k] + gz[k] * hb[k];
      if (y) {
        std::copy_n(hb, H, y->data<float>() + y_offset(t, d, b, T, D, B, H));
      }
    }
  }

  // LSTM, batch of B >= kBatchedRows rows, every sequence T long, default cell (Config::lstm_batched).
  // Transposed, so that every elementwise pass streams over whole rows of B values, and one GEMM per
  // step: [W | R] [4H, I + H] x [x_t^T; h_{t-1}^T] [I + H, B] into G [4H, B], which stays in cache
  // (the first step of a zero initial state multiplies only the I columns of W). A gate pass (bias
  // folded in) and a cell pass then write h_t^T under x_{t+1}^T in the next step's operand; those
  // blocks ([T + 1, I + H, B]) keep every h, so Y, Y_h and Y_c are transposed once at the end.
  void run_lstm_batched(ExecContext& ec, const Tensor& x, const Tensor& w, const Tensor& r, const Tensor* bias,
                        const Tensor* h0, const Tensor* c0, Tensor* y, Tensor* yh, Tensor* yc, int64_t T, int64_t B,
                        int64_t I) const {
    const int64_t H = c_.hidden, GH = 4 * H, D = c_.dirs, K = I + H, zs = K * B;
    float* wrb;                   // [W | R] when not packed at load
    float* zb = batched_scratch(ec, I, GH, static_cast<size_t>((T + 1) * zs + GH * B + H * B + GH), wrb);
    // zb: step s's operand [x_t^T; h_{s-1}^T], s = 0..T
    float* gb = zb + (T + 1) * zs;  // gates [4H, B]
    float* cs = gb + GH * B;      // c^T [H, B]
    float* fb = cs + H * B;       // folded bias [4H]
    const float* X = x.data<float>();
    for (int64_t d = 0; d < D; ++d) {
      const bool reverse = c_.reverse_only || d == 1;
      const float* wr = direction_weights(w, r, bias, d, GH, I, wrb, fb);
      const bool h_zero = load_states_t(h0, c0, d, D, B, H, zb + I * B, cs);
      for (int64_t s = 0; s < T; ++s) {
        float* z = step_operand(X, s, reverse, T, B, I, zb + s * zs);
        GemmArgs g;
        g.M = GH; g.N = B; g.K = s == 0 && h_zero ? I : K;
        g.A = wr; g.lda = K; g.B = z; g.ldb = B; g.C = gb; g.ldc = B;
        c_.blas.gemm(g);
        lstm_gates_t(gb, H, B, B, fb);
        lstm_cell_t(gb, H, B, B, cs, z + zs + I * B);
      }
      store_states_t(zb, zs, I, T, B, H, d, D, reverse, y, yh);
      const int64_t s0 = state_offset(d, 0, D, B, H);
      if (yc) transpose_into(cs, H, B, yc->data<float>() + s0, state_offset(d, 1, D, B, H) - s0);
    }
  }

  // GRU (Config::gru_batched), batch of B >= kBatchedRows rows, every sequence T long: the LSTM's
  // transposed form. Per step [W_zr | R_zr] [2H, I + H] x [x_t^T; h_{t-1}^T] into the z and r rows
  // of G [3H, B], a gate pass that also forms (r . h)^T under a copy of x_t^T, then [W_h | R_h]
  // [H, I + H] x [x_t^T; (r . h)^T] into the h rows and a cell pass that writes h_t^T into the next
  // step's operand. DeepDoubleX at batch 64: 1.4x the row-by-row step's speed (docs/benchmarks.md,
  // #20 item 3 step 10).
  void run_gru_batched(ExecContext& ec, const Tensor& x, const Tensor& w, const Tensor& r, const Tensor* bias,
                       const Tensor* h0, Tensor* y, Tensor* yh, int64_t T, int64_t B, int64_t I) const {
    const int64_t H = c_.hidden, GH = 3 * H, D = c_.dirs, K = I + H, zs = K * B;
    float* wrb;                     // [W | R] when not packed at load
    float* zb = batched_scratch(ec, I, GH, static_cast<size_t>((T + 2) * zs + GH * B + GH), wrb);
    // zb: step s's operand [x_t^T; h_{s-1}^T], s = 0..T
    float* qb = zb + (T + 1) * zs;  // [x_t^T; (r . h)^T]
    float* gb = qb + zs;            // gates [3H, B]
    float* fb = gb + GH * B;        // folded bias [3H]: W's and R's (linear_before_reset = 0 adds both)
    const float* X = x.data<float>();
    const size_t per_dir_acts = c_.acts.size() / static_cast<size_t>(D);
    for (int64_t d = 0; d < D; ++d) {
      const bool reverse = c_.reverse_only || d == 1;
      const RnnActivation& f = c_.acts[static_cast<size_t>(d) * per_dir_acts];
      const bool hard = f.kind == RnnAct::HardSigmoid;
      const float* wr = direction_weights(w, r, bias, d, GH, I, wrb, fb);
      const bool h_zero = load_states_t(h0, nullptr, d, D, B, H, zb + I * B, nullptr);
      for (int64_t s = 0; s < T; ++s) {
        float* z = step_operand(X, s, reverse, T, B, I, zb + s * zs);
        std::copy_n(z, I * B, qb);
        const bool first = s == 0 && h_zero;  // h = 0: only W's columns count
        GemmArgs g;
        g.M = 2 * H; g.N = B; g.K = first ? I : K;
        g.A = wr; g.lda = K; g.B = z; g.ldb = B; g.C = gb; g.ldc = B;
        c_.blas.gemm(g);
        gru_gates_t(gb, H, B, B, fb, hard, f.alpha, f.beta, z + I * B, qb + I * B);
        GemmArgs gh;
        gh.M = H; gh.N = B; gh.K = first ? I : K;
        gh.A = wr + 2 * H * K; gh.lda = K; gh.B = qb; gh.ldb = B; gh.C = gb + 2 * H * B; gh.ldc = B;
        c_.blas.gemm(gh);
        gru_cell_t(gb, H, B, B, fb, z + I * B, z + zs + I * B);
      }
      store_states_t(zb, zs, I, T, B, H, d, D, reverse, y, yh);
    }
  }

  // The batched forms' scratch: `floats` of their own, then [W | R] (returned in wrb) when W and R
  // were not packed at load.
  float* batched_scratch(ExecContext& ec, int64_t I, int64_t GH, size_t floats, float*& wrb) const {
    const bool packed = !c_.wr.empty();
    if (packed && I != c_.input_size) ec.fail("X has input size " + std::to_string(I) + ", W was packed for " + std::to_string(c_.input_size));
    const size_t n_wr = packed ? 0 : static_cast<size_t>(GH * (I + c_.hidden));
    float* base = static_cast<float*>(ec.scratch(sizeof(float) * (floats + n_wr + 64)));
    wrb = base + floats;
    return base;
  }
  // The batched forms' weights of direction d: [W | R] [GH, I + H] (packed at load, else made in wrb)
  // and the folded bias W_b + R_b [GH] in fb.
  const float* direction_weights(const Tensor& w, const Tensor& r, const Tensor* bias, int64_t d, int64_t GH, int64_t I,
                                 float* wrb, float* fb) const {
    const int64_t H = c_.hidden;
    if (c_.wr.empty()) concat_wr(w.data<float>() + d * GH * I, r.data<float>() + d * GH * H, GH, I, H, wrb);
    if (bias)
      for (int64_t j = 0; j < GH; ++j) fb[j] = bias->data<float>()[d * 2 * GH + j] + bias->data<float>()[d * 2 * GH + GH + j];
    else
      std::fill_n(fb, GH, 0.0f);
    return c_.wr.empty() ? wrb : c_.wr.data() + d * GH * (I + H);
  }
  // The batched forms' operand blocks [x_t^T; h^T] ([I + H, B] each, zs = (I + H) B floats apart).
  // h0 (zero when absent) of direction d as h^T [H, B] into ht, c0 likewise into ct when given;
  // true when h0 is all zero (the first step then multiplies only W).
  bool load_states_t(const Tensor* h0, const Tensor* c0, int64_t d, int64_t D, int64_t B, int64_t H, float* ht,
                     float* ct) const {
    bool h_zero = true;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t off = state_offset(d, b, D, B, H);
      for (int64_t k = 0; k < H; ++k) {
        const float hv = h0 ? h0->data<float>()[off + k] : 0.0f;
        h_zero = h_zero && hv == 0.0f;
        ht[k * B + b] = hv;
        if (ct) ct[k * B + b] = c0 ? c0->data<float>()[off + k] : 0.0f;
      }
    }
    return h_zero;
  }
  // Step s's operand block z with x_t^T [I, B] loaded (t = s, or T - 1 - s in reverse).
  float* step_operand(const float* X, int64_t s, bool reverse, int64_t T, int64_t B, int64_t I, float* z) const {
    const int64_t t = reverse ? T - 1 - s : s;
    for (int64_t b = 0; b < B; ++b) {
      const float* xr = X + row_of(t, b, T, B) * I;
      for (int64_t i = 0; i < I; ++i) z[i * B + b] = xr[i];
    }
    return z;
  }
  // Back to the ONNX layouts: Y from the h^T of blocks 1..T (step s wrote block s + 1), Y_h from
  // block T's; row b of a state is H values at state_offset(d, b).
  void store_states_t(const float* zb, int64_t zs, int64_t I, int64_t T, int64_t B, int64_t H, int64_t d, int64_t D,
                      bool reverse, Tensor* y, Tensor* yh) const {
    if (y)
      for (int64_t s = 0; s < T; ++s) {
        const int64_t t = reverse ? T - 1 - s : s;
        const int64_t y0 = y_offset(t, d, 0, T, D, B, H);
        transpose_into(zb + (s + 1) * zs + I * B, H, B, y->data<float>() + y0, y_offset(t, d, 1, T, D, B, H) - y0);
      }
    const int64_t s0 = state_offset(d, 0, D, B, H);
    if (yh) transpose_into(zb + T * zs + I * B, H, B, yh->data<float>() + s0, state_offset(d, 1, D, B, H) - s0);
  }

 public:
  // Floats from p to the next 64-byte boundary: where Config::rp's panels start (the load writes
  // them there and every call reads them there; computed from the pointer, so a copied Config agrees).
  static int64_t line_offset(const float* p) {
    return static_cast<int64_t>((64 - (reinterpret_cast<uintptr_t>(p) & 63)) & 63) / static_cast<int64_t>(sizeof(float));
  }
  // [W | R] of one direction, [G*H, I + H] (W [G*H, I] and R [G*H, H] as ONNX stores them).
  static void concat_wr(const float* w, const float* r, int64_t GH, int64_t I, int64_t H, float* out) {
    for (int64_t j = 0; j < GH; ++j) {
      std::copy_n(w + j * I, I, out + j * (I + H));
      std::copy_n(r + j * H, H, out + j * (I + H) + I);
    }
  }

  // dst[j * ld + i] = src[i * cols + j] for a [rows, cols] src, in 16 x 16 tiles (ld = rows: the
  // plain transpose, as the weights are packed).
  static void transpose_into(const float* src, int64_t rows, int64_t cols, float* dst, int64_t ld) {
    for (int64_t i0 = 0; i0 < rows; i0 += 16)
      for (int64_t j0 = 0; j0 < cols; j0 += 16) {
        const int64_t i1 = std::min(rows, i0 + 16), j1 = std::min(cols, j0 + 16);
        for (int64_t j = j0; j < j1; ++j)
          for (int64_t i = i0; i < i1; ++i) dst[j * ld + i] = src[i * cols + j];
      }
  }

 private:

  float clipv(float v) const { return c_.clip > 0 ? std::min(std::max(v, -c_.clip), c_.clip) : v; }

  // One batch row: `g` holds the gate pre-activations (x and h projections, biases); for GRU the
  // h gate holds only h x Rh^T (linear_before_reset) or nothing yet. Updates h (and c).
  void step_row(float* g, float* h, float* c, const float* xr, const float* rbh, const float* p,
                const RnnActivation* acts, float* tmp) const {
    const int64_t H = c_.hidden;
    const bool clip = c_.clip > 0;
    switch (c_.kind) {
      case CellKind::RNN: {
        if (clip) for (int64_t k = 0; k < H; ++k) g[k] = clipv(g[k]);
        rnn_act(g, H, acts[0], c_.blas.repro());
        std::copy_n(g, H, h);
        break;
      }
      case CellKind::LSTM: {
        float *gi = g, *go = g + H, *gf = g + 2 * H, *gc = g + 3 * H;
        const RnnActivation &f = acts[0], &gg = acts[1], &hh = acts[2];
        if (p) {
          for (int64_t k = 0; k < H; ++k) {
            gi[k] += p[k] * c[k];
            gf[k] += p[2 * H + k] * c[k];
          }
        }
        if (clip)
          for (int64_t k = 0; k < H; ++k) {
            gi[k] = clipv(gi[k]);
            gf[k] = clipv(gf[k]);
            gc[k] = clipv(gc[k]);
          }
        rnn_act(gi, H, f, c_.blas.repro());
        if (c_.input_forget) {
          for (int64_t k = 0; k < H; ++k) gf[k] = 1.0f - gi[k];
        } else {
          rnn_act(gf, H, f, c_.blas.repro());
        }
        rnn_act(gc, H, gg, c_.blas.repro());
        for (int64_t k = 0; k < H; ++k) c[k] = gf[k] * c[k] + gi[k] * gc[k];
        if (p)
          for (int64_t k = 0; k < H; ++k) go[k] += p[H + k] * c[k];
        if (clip)
          for (int64_t k = 0; k < H; ++k) go[k] = clipv(go[k]);
        rnn_act(go, H, f, c_.blas.repro());
        std::copy_n(c, H, tmp);
        rnn_act(tmp, H, hh, c_.blas.repro());
        for (int64_t k = 0; k < H; ++k) h[k] = go[k] * tmp[k];
        break;
      }
      case CellKind::GRU: {
        float *gz = g, *gr = g + H, *gh = g + 2 * H;
        const RnnActivation &f = acts[0], &gg = acts[1];
        if (clip)
          for (int64_t k = 0; k < 2 * H; ++k) g[k] = clipv(g[k]);
        rnn_act(gz, H, f, c_.blas.repro());
        rnn_act(gr, H, f, c_.blas.repro());
        // linear_before_reset = 1 only (the other form runs in gru_step_batched).
        const float* xh = xr + 2 * H;  // x projection (+ Wb) of the h gate
        for (int64_t k = 0; k < H; ++k) gh[k] = xh[k] + gr[k] * (gh[k] + (rbh ? rbh[k] : 0.0f));
        if (clip)
          for (int64_t k = 0; k < H; ++k) gh[k] = clipv(gh[k]);
        rnn_act(gh, H, gg, c_.blas.repro());
        for (int64_t k = 0; k < H; ++k) h[k] = (1.0f - gz[k]) * gh[k] + gz[k] * h[k];
        break;
      }
    }
  }

  Config c_;
};

inline RnnActivation parse_rnn_activation(const std::string& name, const std::vector<float>& alphas,
                                          const std::vector<float>& betas, size_t& ia, size_t& ib) {
  RnnActivation a;
  auto take = [&](const std::vector<float>& v, size_t& i, float def) { return i < v.size() ? v[i++] : def; };
  std::string n = name;
  for (auto& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (n == "relu") a.kind = RnnAct::Relu;
  else if (n == "tanh") a.kind = RnnAct::Tanh;
  else if (n == "sigmoid") a.kind = RnnAct::Sigmoid;
  else if (n == "affine") { a.kind = RnnAct::Affine; a.alpha = take(alphas, ia, 1.0f); a.beta = take(betas, ib, 0.0f); }
  else if (n == "leakyrelu") { a.kind = RnnAct::LeakyRelu; a.alpha = take(alphas, ia, 0.01f); }
  else if (n == "thresholdedrelu") { a.kind = RnnAct::ThresholdedRelu; a.alpha = take(alphas, ia, 1.0f); }
  else if (n == "scaledtanh") { a.kind = RnnAct::ScaledTanh; a.alpha = take(alphas, ia, 1.0f); a.beta = take(betas, ib, 1.0f); }
  else if (n == "hardsigmoid") { a.kind = RnnAct::HardSigmoid; a.alpha = take(alphas, ia, 0.2f); a.beta = take(betas, ib, 0.5f); }
  else if (n == "elu") { a.kind = RnnAct::Elu; a.alpha = take(alphas, ia, 1.0f); }
  else if (n == "softsign") a.kind = RnnAct::Softsign;
  else if (n == "softplus") a.kind = RnnAct::Softplus;
  else throw_error(ErrorCode::InvalidArgument, "unknown activation '" + name + "'");
  return a;
}

// The activations of an RNN / GRU / LSTM node, per direction (defaults when absent, one list given
// for both directions, activation_alpha / activation_beta consumed in order). Shared by the CPU
// kernels and the GPU executor; throws InvalidArgument.
inline std::vector<RnnActivation> parse_rnn_activations(const Attributes& at, CellKind kind, int64_t dirs) {
  std::vector<std::string> defaults;
  if (kind == CellKind::LSTM) defaults = {"Sigmoid", "Tanh", "Tanh"};
  else if (kind == CellKind::GRU) defaults = {"Sigmoid", "Tanh"};
  else defaults = {"Tanh"};
  std::vector<std::string> names = at.get_strings("activations");
  if (names.empty()) {
    for (int64_t d = 0; d < dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  } else if (names.size() == defaults.size() && dirs == 2) {
    std::vector<std::string> twice = names;
    names.insert(names.end(), twice.begin(), twice.end());
  } else if (names.size() != defaults.size() * static_cast<size_t>(dirs)) {
    throw_error(ErrorCode::InvalidArgument, "activations has " + std::to_string(names.size()) + " entries, expected " +
                                                std::to_string(defaults.size() * static_cast<size_t>(dirs)));
  }
  const auto alphas = at.get_floats("activation_alpha"), betas = at.get_floats("activation_beta");
  size_t ia = 0, ib = 0;
  std::vector<RnnActivation> acts;
  for (const auto& n : names) acts.push_back(parse_rnn_activation(n, alphas, betas, ia, ib));
  return acts;
}

// An LSTM cell the batched forms take (the engine's run_lstm_batched, the compiled rt::lstm_batch):
// sigmoid/tanh/tanh in every direction, no clip, no input_forget. Peepholes are checked by each caller.
inline bool lstm_default_cell(CellKind kind, float clip, bool input_forget, const std::vector<RnnActivation>& acts) {
  if (kind != CellKind::LSTM || clip != 0 || input_forget) return false;
  for (size_t i = 0; i < acts.size(); ++i)
    if (acts[i].kind != (i % 3 == 0 ? RnnAct::Sigmoid : RnnAct::Tanh)) return false;
  return true;
}

inline std::unique_ptr<Kernel> build_recurrent(BuildContext& ctx, CellKind kind) {
  const size_t max_in = kind == CellKind::LSTM ? 8 : 6;
  ctx.expect_inputs(3, max_in);
  for (size_t i = 0; i < max_in; ++i) {
    if (!ctx.has_input(i)) continue;
    if (i == 4) ctx.expect_dtype(i, {DType::I32, DType::I64});
    else ctx.expect_dtype(i, {DType::F32});
  }
  const auto& at = ctx.attrs();
  RecurrentKernel::Config c;
  c.kind = kind;
  c.gates = kind == CellKind::LSTM ? 4 : kind == CellKind::GRU ? 3 : 1;
  const std::string dir = at.get_string("direction", "forward");
  if (dir == "forward") c.dirs = 1;
  else if (dir == "reverse") { c.dirs = 1; c.reverse_only = true; }
  else if (dir == "bidirectional") c.dirs = 2;
  else ctx.fail("unknown direction '" + dir + "'");
  c.layout = static_cast<int>(at.get_int("layout", 0));
  if (c.layout != 0 && c.layout != 1) ctx.fail("layout must be 0 or 1");
  c.clip = at.has("clip") ? at.get_float("clip", 0) : 0;
  if (at.has("clip") && c.clip <= 0) ctx.fail("clip must be positive");
  c.input_forget = at.get_int("input_forget", 0) != 0;
  c.linear_before_reset = at.get_int("linear_before_reset", 0) != 0;
  // hidden_size: attribute, else from R's shape.
  c.hidden = at.get_int("hidden_size", -1);
  const ValueInfo& ri = ctx.input(2);
  if (c.hidden <= 0 && ri.shape && ri.shape->size() == 3) c.hidden = (*ri.shape)[2];
  if (c.hidden <= 0) ctx.fail("hidden_size is missing and R's shape is unknown");
  c.acts = parse_rnn_activations(at, kind, c.dirs);
  c.last_step_of = at.get_string("_quiver_last_step_of", "");
  c.blas = Blas(ctx.target());
  c.lstm_batched = !ctx.target().reproducible() && lstm_default_cell(kind, c.clip, c.input_forget, c.acts);
  c.gru_batched = !ctx.target().reproducible() && kind == CellKind::GRU && !c.linear_before_reset && c.clip == 0;
  for (size_t i = 0; i < c.acts.size() && c.gru_batched; ++i)
    c.gru_batched = i % 2 == 0 ? c.acts[i].kind == RnnAct::Sigmoid || c.acts[i].kind == RnnAct::HardSigmoid
                               : c.acts[i].kind == RnnAct::Tanh;
  if (ctx.target().reproducible())
    for (const auto& a : c.acts)
      if (a.kind == RnnAct::ScaledTanh || a.kind == RnnAct::Elu || a.kind == RnnAct::Softplus)
        ctx.unsupported("no reproducible kernel for the " + ctx.op_type() + " activation (ScaledTanh, Elu and Softplus use the C library)");
  // Pack constant W/R.
  const int64_t H = c.hidden, GH = c.gates * H;
  if (ctx.input(1).constant && ctx.input(2).constant) {
    const Tensor& w = *ctx.input(1).constant;
    const Tensor& r = *ctx.input(2).constant;
    if (w.rank() != 3 || w.dim(0) != c.dirs || w.dim(1) != GH) ctx.fail("W has shape " + dims_to_string(w.dims()), ctx.input_name(1));
    if (r.rank() != 3 || r.dim(0) != c.dirs || r.dim(1) != GH || r.dim(2) != H)
      ctx.fail("R has shape " + dims_to_string(r.dims()), ctx.input_name(2));
    const int64_t I = w.dim(2);
    c.input_size = I;
    c.wt.resize(static_cast<size_t>(c.dirs * I * GH));
    c.rt.resize(static_cast<size_t>(c.dirs * H * GH));
    for (int64_t d = 0; d < c.dirs; ++d) {
      RecurrentKernel::transpose_into(w.data<float>() + d * GH * I, GH, I, c.wt.data() + d * I * GH, GH);
      RecurrentKernel::transpose_into(r.data<float>() + d * GH * H, GH, H, c.rt.data() + d * H * GH, GH);
    }
    if (!ctx.target().reproducible() && H >= 16) {
      // Batch 1's GEMV reads R^T panel-major (Config::rp); the choice is the load's, not the call's.
      const bool split = kind == CellKind::GRU && !c.linear_before_reset;
      c.rp_h = split ? rnn_gemv_pack(nullptr, H, GH, 2 * H, nullptr) : 0;
      c.rp_stride = c.rp_h + rnn_gemv_pack(nullptr, H, GH, split ? H : GH, nullptr);
      c.rp.resize(static_cast<size_t>(c.dirs * c.rp_stride + 16));
      float* rp = c.rp.data() + RecurrentKernel::line_offset(c.rp.data());
      for (int64_t d = 0; d < c.dirs; ++d) {
        const float* rt = c.rt.data() + d * H * GH;
        float* out = rp + d * c.rp_stride;
        if (split) {
          rnn_gemv_pack(rt, H, GH, 2 * H, out);
          rnn_gemv_pack(rt + 2 * H, H, GH, H, out + c.rp_h);
        } else {
          rnn_gemv_pack(rt, H, GH, GH, out);
        }
      }
    }
    if (c.lstm_batched || c.gru_batched) {
      c.wr.resize(static_cast<size_t>(c.dirs * GH * (I + H)));
      for (int64_t d = 0; d < c.dirs; ++d)
        RecurrentKernel::concat_wr(w.data<float>() + d * GH * I, r.data<float>() + d * GH * H, GH, I, H, c.wr.data() + d * GH * (I + H));
    }
  }
  // Output shapes.
  const auto& xs = ctx.input(0).shape;
  int64_t T = -1, B = -1;
  if (xs && xs->size() == 3) {
    T = c.layout == 0 ? (*xs)[0] : (*xs)[1];
    B = c.layout == 0 ? (*xs)[1] : (*xs)[0];
  }
  if (c.layout == 0) ctx.set_output(0, DType::F32, std::vector<int64_t>{T, c.dirs, B, H});
  else ctx.set_output(0, DType::F32, std::vector<int64_t>{B, T, c.dirs, H});
  const std::vector<int64_t> st = c.layout == 0 ? std::vector<int64_t>{c.dirs, B, H} : std::vector<int64_t>{B, c.dirs, H};
  ctx.set_output(1, DType::F32, st);
  if (kind == CellKind::LSTM) ctx.set_output(2, DType::F32, st);
  return std::make_unique<RecurrentKernel>(std::move(c));
}

}  // namespace quiver::onnx
