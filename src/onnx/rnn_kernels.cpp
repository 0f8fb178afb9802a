// The default-numerics hot loops of the recurrent ops (declared in ops/rnn_common.hpp): gate
// activations, the batched LSTM's passes and the one-row recurrent GEMV, in ISA clones.
//
// They live apart from the op files because this file alone is compiled with -ffp-contract=fast
// (src/onnx/CMakeLists.txt): the clones want fused multiply-adds, while rnn.cpp, gru.cpp and
// lstm.cpp each instantiate RecurrentKernel (rnn_common.hpp), whose reproducible path must never
// have a*b+c contracted. With contraction allowed in one of those files, a -march with FMA
// (QUIVER_NATIVE) would fuse the reproducible cell update there, and which copy of the inline
// code the linker kept would decide the bits.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "onnx/ops/rnn_common.hpp"
#include "onnx/simd.hpp"

// ISA-level clones (simd.hpp: x86-64-v4/v3 dispatch on the ISA level, not the CPU model).
#define QUIVER_RNN_CLONES QUIVER_HOT

namespace quiver::onnx {

// exp(x) for x clamped to [-87.3, 88.7]: 2^n * p(r), r = x - n ln2 (Cody-Waite), degree-6
// polynomial. A macro, not a function: the target clones below (arch=...) would otherwise call an
// un-inlined baseline function per element and lose vectorisation.
#define QUIVER_FAST_EXP(xin, out)                                                  \
  do {                                                                             \
    const float x_ = std::min(std::max((xin), -87.3f), 88.7f);                     \
    const float fn_ = std::floor(x_ * 1.44269504088896341f + 0.5f);                \
    const float r_ = (x_ - fn_ * 0.693359375f) + fn_ * 2.12194440e-4f;             \
    float p_ = 1.9875691500e-4f;                                                   \
    p_ = p_ * r_ + 1.3981999507e-3f;                                               \
    p_ = p_ * r_ + 8.3334519073e-3f;                                               \
    p_ = p_ * r_ + 4.1665795894e-2f;                                               \
    p_ = p_ * r_ + 1.6666665459e-1f;                                               \
    p_ = p_ * r_ + 5.0000001201e-1f;                                               \
    p_ = p_ * r_ * r_ + r_ + 1.0f;                                                 \
    const int32_t e_ = static_cast<int32_t>(fn_) + 127;                            \
    (out) = p_ * std::bit_cast<float>(static_cast<uint32_t>(e_) << 23);            \
  } while (0)

QUIVER_RNN_CLONES
void rnn_sigmoid_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float e;
    QUIVER_FAST_EXP(-x[i], e);
    x[i] = 1.0f / (1.0f + e);
  }
}

// tanh(v) from one exp: sign(v) (1 - e) / (1 + e), e = exp(-2|v|); below |v| = 0.02 the series,
// where 1 - e would cancel.
#define QUIVER_FAST_TANH(vin, out)                                                       \
  do {                                                                                   \
    const float v_ = (vin);                                                              \
    const float a_ = std::abs(v_);                                                       \
    float e2_;                                                                           \
    QUIVER_FAST_EXP(-2.0f * a_, e2_);                                                    \
    const float big_ = (1.0f - e2_) / (1.0f + e2_);                                      \
    const float s2_ = a_ * a_;                                                           \
    const float small_ = a_ * (1.0f - s2_ * (0.333333333f - s2_ * 0.133333333f));       \
    const float t_ = a_ < 0.02f ? small_ : big_;                                         \
    (out) = v_ < 0 ? -t_ : t_;                                                           \
  } while (0)

QUIVER_RNN_CLONES
void rnn_tanh_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) QUIVER_FAST_TANH(x[i], x[i]);
}

// The batched LSTM's passes (rnn_common.hpp): each inner loop runs over one row of B values, so
// it vectorises without a tail for batches that are a multiple of the vector width.
QUIVER_RNN_CLONES
void lstm_gates_t(float* g, int64_t H, int64_t B, int64_t ld, const float* bias) {
  for (int64_t row = 0; row < 3 * H; ++row) {
    float* __restrict p = g + row * ld;
    const float bv = bias[row];
    for (int64_t n = 0; n < B; ++n) {
      float e;
      QUIVER_FAST_EXP(-(p[n] + bv), e);
      p[n] = 1.0f / (1.0f + e);
    }
  }
  for (int64_t row = 3 * H; row < 4 * H; ++row) {
    float* __restrict p = g + row * ld;
    const float bv = bias[row];
    for (int64_t n = 0; n < B; ++n) QUIVER_FAST_TANH(p[n] + bv, p[n]);
  }
}

QUIVER_RNN_CLONES
void lstm_cell_t(const float* g, int64_t H, int64_t B, int64_t ld, float* c, float* h) {
  for (int64_t k = 0; k < H; ++k) {
    const float* __restrict gi = g + k * ld;
    const float* __restrict go = g + (H + k) * ld;
    const float* __restrict gf = g + (2 * H + k) * ld;
    const float* __restrict gc = g + (3 * H + k) * ld;
    float* __restrict ck = c + k * B;
    float* __restrict hk = h + k * B;
    for (int64_t n = 0; n < B; ++n) {
      const float cv = gf[n] * ck[n] + gi[n] * gc[n];
      ck[n] = cv;
      float th;
      QUIVER_FAST_TANH(cv, th);
      hk[n] = go[n] * th;
    }
  }
}

QUIVER_RNN_CLONES
void gru_gates_t(float* g, int64_t H, int64_t B, int64_t ld, const float* bias, bool hard, float alpha, float beta,
                 const float* h, float* rh) {
  for (int64_t row = 0; row < 2 * H; ++row) {
    float* __restrict p = g + row * ld;
    const float bv = bias[row];
    if (hard) {
      for (int64_t n = 0; n < B; ++n) p[n] = std::max(0.0f, std::min(1.0f, alpha * (p[n] + bv) + beta));
    } else {
      for (int64_t n = 0; n < B; ++n) {
        float e;
        QUIVER_FAST_EXP(-(p[n] + bv), e);
        p[n] = 1.0f / (1.0f + e);
      }
    }
  }
  for (int64_t k = 0; k < H; ++k) {
    const float* __restrict r = g + (H + k) * ld;
    const float* __restrict hk = h + k * B;
    float* __restrict o = rh + k * B;
    for (int64_t n = 0; n < B; ++n) o[n] = r[n] * hk[n];
  }
}

QUIVER_RNN_CLONES
void gru_cell_t(const float* g, int64_t H, int64_t B, int64_t ld, const float* bias, const float* h, float* hn) {
  for (int64_t k = 0; k < H; ++k) {
    const float* __restrict gz = g + k * ld;
    const float* __restrict gh = g + (2 * H + k) * ld;
    const float* __restrict hk = h + k * B;
    float* __restrict o = hn + k * B;
    const float bv = bias[2 * H + k];
    for (int64_t n = 0; n < B; ++n) {
      float th;
      QUIVER_FAST_TANH(gh[n] + bv, th);
      o[n] = (1.0f - gz[n]) * th + gz[n] * hk[n];
    }
  }
}

// y[N] = x[K] B[K, N] (one batch row's recurrent projection). Panels of NV x 16 columns with KS
// independent chains over k, NV x KS >= 8 accumulators: with one chain of two accumulators (the
// old form) every FMA waited on the previous one's latency (perf, DeepVertex batch 1: half the
// model's time in this loop). Each column still sums its k terms in order when KS = 1 (panels of
// 128 columns); narrower panels interleave KS partial sums, added at the end.
typedef float v16f __attribute__((vector_size(64)));
template <int NV, int KS>
[[gnu::always_inline]] inline void rnn_gemv_panel(const float* x, int64_t K, const float* B, int64_t ldb, float* y) {
  v16f acc[KS][NV];
  for (int s = 0; s < KS; ++s)
    for (int v = 0; v < NV; ++v) acc[s][v] = v16f{};
  int64_t k = 0;
  for (; k + KS <= K; k += KS)
    for (int s = 0; s < KS; ++s) {
      const float xv = x[k + s];
      const float* b = B + (k + s) * ldb;
      for (int v = 0; v < NV; ++v) {
        v16f bv;
        __builtin_memcpy(&bv, b + 16 * v, sizeof bv);
        acc[s][v] += xv * bv;
      }
    }
  for (; k < K; ++k) {
    const float xv = x[k];
    const float* b = B + k * ldb;
    for (int v = 0; v < NV; ++v) {
      v16f bv;
      __builtin_memcpy(&bv, b + 16 * v, sizeof bv);
      acc[0][v] += xv * bv;
    }
  }
  for (int v = 0; v < NV; ++v) {
    v16f r = acc[0][v];
    for (int s = 1; s < KS; ++s) r += acc[s][v];
    __builtin_memcpy(y + 16 * v, &r, sizeof r);
  }
}

QUIVER_RNN_CLONES
void rnn_gemv(const float* x, int64_t K, const float* B, int64_t ldb, int64_t N, float* y) {
  int64_t n0 = 0;
  for (; n0 + 128 <= N; n0 += 128) rnn_gemv_panel<8, 1>(x, K, B + n0, ldb, y + n0);
  if (n0 + 64 <= N) {
    rnn_gemv_panel<4, 2>(x, K, B + n0, ldb, y + n0);
    n0 += 64;
  }
  if (n0 + 32 <= N) {
    rnn_gemv_panel<2, 4>(x, K, B + n0, ldb, y + n0);
    n0 += 32;
  }
  if (n0 + 16 <= N) {
    rnn_gemv_panel<1, 8>(x, K, B + n0, ldb, y + n0);
    n0 += 16;
  }
  if (n0 < N && N >= 16) {
    // The last columns as one 16-wide panel ending at N, over columns done above (written again:
    // the same products, summed in another order). The 8-wide and scalar tails below are one chain
    // of dependent FMAs per column (K x 4 cycles): a GRU of 50 units had 6 such columns per step.
    rnn_gemv_panel<1, 8>(x, K, B + N - 16, ldb, y + N - 16);
    return;
  }
  for (; n0 + 8 <= N; n0 += 8) {
    float acc[8] = {};
    for (int64_t k = 0; k < K; ++k) {
      const float xv = x[k];
      const float* b = B + k * ldb + n0;
      for (int j = 0; j < 8; ++j) acc[j] += xv * b[j];
    }
    for (int j = 0; j < 8; ++j) y[n0 + j] = acc[j];
  }
  for (; n0 < N; ++n0) {
    float acc = 0;
    for (int64_t k = 0; k < K; ++k) acc += x[k] * B[k * ldb + n0];
    y[n0] = acc;
  }
}

// rnn_gemv's panels (N >= 16) in the order rnn_gemv_packed reads them, each panel's K rows of its
// width contiguous: strided, a 128-column panel of DeepJet's cpf LSTM (K 150, N 600) came from L2
// as 150 rows 2 400 bytes apart (~20 GFLOP/s); packed, it is one sequential stream.
int64_t rnn_gemv_pack(const float* B, int64_t K, int64_t ldb, int64_t N, float* out) {
  int64_t n0 = 0, size = 0;
  auto panel = [&](int64_t c0, int64_t width) {
    if (out)
      for (int64_t k = 0; k < K; ++k) std::copy_n(B + k * ldb + c0, width, out + size + k * width);
    size += K * width;
  };
  for (; n0 + 128 <= N; n0 += 128) panel(n0, 128);
  for (int64_t w : {64, 32, 16})
    if (n0 + w <= N) {
      panel(n0, w);
      n0 += w;
    }
  if (n0 < N) panel(N - 16, 16);  // as rnn_gemv: a 16-wide panel ending at N
  return size;
}

QUIVER_RNN_CLONES
void rnn_gemv_packed(const float* x, int64_t K, const float* P, int64_t N, float* y) {
  int64_t n0 = 0;
  for (; n0 + 128 <= N; n0 += 128, P += 128 * K) rnn_gemv_panel<8, 1>(x, K, P, 128, y + n0);
  if (n0 + 64 <= N) {
    rnn_gemv_panel<4, 2>(x, K, P, 64, y + n0);
    n0 += 64;
    P += 64 * K;
  }
  if (n0 + 32 <= N) {
    rnn_gemv_panel<2, 4>(x, K, P, 32, y + n0);
    n0 += 32;
    P += 32 * K;
  }
  if (n0 + 16 <= N) {
    rnn_gemv_panel<1, 8>(x, K, P, 16, y + n0);
    n0 += 16;
    P += 16 * K;
  }
  if (n0 < N) rnn_gemv_panel<1, 8>(x, K, P, 16, y + N - 16);
}

}  // namespace quiver::onnx
