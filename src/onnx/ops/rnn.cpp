// RNN (ai.onnx): see rnn_common.hpp for the shared recurrent implementation. This file also holds
// the vectorised sigmoid/tanh used by LSTM/GRU/RNN gates.
#include <bit>

#include "onnx/ops/rnn_common.hpp"
#include "onnx/simd.hpp"

namespace quiver::onnx {

namespace {

// exp(x) for x in [-87.3, 88.7]: 2^n * p(r), r = x - n ln2 (Cody-Waite), degree-6 polynomial.
inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.3f), 88.7f);
  const float fn = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = static_cast<int32_t>(fn) + 127;
  return p * std::bit_cast<float>(static_cast<uint32_t>(e) << 23);
}

}  // namespace

QUIVER_HOT
void rnn_sigmoid_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 1.0f / (1.0f + fast_exp(-x[i]));
}

QUIVER_HOT
void rnn_tanh_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float a = std::abs(v);
    const float e = fast_exp(-2.0f * a);
    const float big = (1.0f - e) / (1.0f + e);
    const float v2 = a * a;
    const float small = a * (1.0f - v2 * (0.333333333f - v2 * 0.133333333f));  // |x| < 0.02: series
    const float t = a < 0.02f ? small : big;
    x[i] = v < 0 ? -t : t;
  }
}

QUIVER_HOT
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
