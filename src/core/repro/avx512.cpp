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
#include "core/repro/kernels.inc"
}  // namespace
const Kernels& kernels_avx512() { return kTable; }
}  // namespace quiver::repro
