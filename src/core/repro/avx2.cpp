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
#include "core/repro/kernels.inc"
}  // namespace
const Kernels& kernels_avx2() { return kTable; }
}  // namespace quiver::repro
