// The reproducible kernels for x86-64-v4 (AVX-512): 16-float vectors, hardware FMA.
#include <immintrin.h>

#include "core/repro/repro.hpp"

namespace quiver::repro {
namespace {
typedef float V __attribute__((vector_size(64)));
constexpr int W = 16;
constexpr const char* kIsa = "avx512";
[[gnu::always_inline]] inline float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
[[gnu::always_inline]] inline V vfma(V a, V b, V c) {
  return reinterpret_cast<V>(_mm512_fmadd_ps(reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b),
                                             reinterpret_cast<__m512>(c)));
}
[[gnu::always_inline]] inline V vsplat(float a) { return reinterpret_cast<V>(_mm512_set1_ps(a)); }
[[gnu::always_inline]] inline __mmask16 lanes(int n) { return static_cast<__mmask16>((1u << n) - 1); }
[[gnu::always_inline]] inline V vload_n(const float* p, int n) {
  return reinterpret_cast<V>(_mm512_maskz_loadu_ps(lanes(n), p));
}
[[gnu::always_inline]] inline void vstore_n(float* p, V v, int n) {
  _mm512_mask_storeu_ps(p, lanes(n), reinterpret_cast<__m512>(v));
}
constexpr int kMR = 6, kAcc = 24;  // 24 accumulators of the 32 zmm registers
#include "core/repro/kernels.inc"
}  // namespace
const Kernels& kernels_avx512() { return kTable; }
}  // namespace quiver::repro
