// The reproducible kernels for x86-64-v3 (AVX2 + FMA): 8-float vectors, hardware FMA.
#include <immintrin.h>

#include "core/repro/repro.hpp"

namespace quiver::repro {
namespace {
typedef float V __attribute__((vector_size(32)));
constexpr int W = 8;
constexpr const char* kIsa = "avx2";
[[gnu::always_inline]] inline float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
[[gnu::always_inline]] inline V vfma(V a, V b, V c) {
  return reinterpret_cast<V>(_mm256_fmadd_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b),
                                             reinterpret_cast<__m256>(c)));
}
[[gnu::always_inline]] inline V vsplat(float a) { return reinterpret_cast<V>(_mm256_set1_ps(a)); }
[[gnu::always_inline]] inline __m256i lanes(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
[[gnu::always_inline]] inline V vload_n(const float* p, int n) { return reinterpret_cast<V>(_mm256_maskload_ps(p, lanes(n))); }
[[gnu::always_inline]] inline void vstore_n(float* p, V v, int n) {
  _mm256_maskstore_ps(p, lanes(n), reinterpret_cast<__m256>(v));
}
constexpr int kMR = 4, kAcc = 12;  // 12 accumulators of the 16 ymm registers
#include "core/repro/kernels.inc"
}  // namespace
const Kernels& kernels_avx2() { return kTable; }
}  // namespace quiver::repro
