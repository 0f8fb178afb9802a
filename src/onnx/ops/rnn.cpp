// RNN (ai.onnx): see rnn_common.hpp for the shared recurrent implementation. This file also holds
// the vectorised sigmoid/tanh used by LSTM/GRU/RNN gates.
#include <bit>

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

QUIVER_RNN_CLONES
void rnn_tanh_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float a = std::abs(v);
    float e;
    QUIVER_FAST_EXP(-2.0f * a, e);
    const float big = (1.0f - e) / (1.0f + e);
    const float v2 = a * a;
    const float small = a * (1.0f - v2 * (0.333333333f - v2 * 0.133333333f));  // |x| < 0.02: series
    const float t = a < 0.02f ? small : big;
    x[i] = v < 0 ? -t : t;
  }
}

QUIVER_RNN_CLONES
void rnn_gemv(const float* x, int64_t K, const float* B, int64_t ldb, int64_t N, float* y) {
  int64_t n0 = 0;
  for (; n0 + 32 <= N; n0 += 32) {
    float acc[32] = {};
    for (int64_t k = 0; k < K; ++k) {
      const float xv = x[k];
      const float* b = B + k * ldb + n0;
      for (int j = 0; j < 32; ++j) acc[j] += xv * b[j];
    }
    for (int j = 0; j < 32; ++j) y[n0 + j] = acc[j];
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

QUIVER_REGISTER_OPS(rnn) {
  registry.add({"", "RNN", [](BuildContext& ctx) { return build_recurrent(ctx, CellKind::RNN); }});
}
}  // namespace quiver::onnx
