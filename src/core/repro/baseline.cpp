// The reproducible kernels for baseline x86-64 (SSE2, no FMA instruction): 4-float vectors. Each
// multiply-add is an exact float fma computed in double arithmetic, so the bits equal the FMA ISAs'.
#include "core/repro/repro.hpp"

namespace quiver::repro {
namespace {
typedef float V __attribute__((vector_size(16)));
constexpr int W = 4;
constexpr const char* kIsa = "baseline";

// Correctly rounded a*b+c without an FMA instruction (and without the C library's fmaf, which
// switches rounding modes and is ~20x slower): the product of two floats is exact in double; the sum
// is rounded to odd (TwoSum gives the rounding error; an inexact even result moves one ulp towards
// it), and a double rounded to odd then rounded to float is the correctly rounded float result
// (53 >= 24 + 2 bits). Inf and NaN follow from the double operations.
[[gnu::always_inline]] inline float fma(float a, float b, float c) {
  const double p = static_cast<double>(a) * static_cast<double>(b);
  const double cd = c;
  const double s = p + cd;
  const double bb = s - p;
  const double err = (p - (s - bb)) + (cd - bb);
  uint64_t u;
  __builtin_memcpy(&u, &s, 8);
  const bool adjust = err != 0.0 && (u & 1) == 0;
  const bool away = (err > 0.0) == (s > 0.0);
  u = adjust ? (away ? u + 1 : u - 1) : u;
  double r;
  __builtin_memcpy(&r, &u, 8);
  return static_cast<float>(s - s == 0.0 ? r : s);  // s - s != 0: s is inf or NaN
}
[[gnu::always_inline]] inline V vfma(V a, V b, V c) {
  V r;
  for (int i = 0; i < W; ++i) r[i] = fma(a[i], b[i], c[i]);
  return r;
}
[[gnu::always_inline]] inline V vsplat(float a) { return V{a, a, a, a}; }
[[gnu::always_inline]] inline V vload_n(const float* p, int n) {
  V v = {};
  for (int i = 0; i < n; ++i) v[i] = p[i];
  return v;
}
[[gnu::always_inline]] inline void vstore_n(float* p, V v, int n) {
  for (int i = 0; i < n; ++i) p[i] = v[i];
}
constexpr int kMR = 4, kAcc = 8;
#include "core/repro/kernels.inc"
}  // namespace
const Kernels& kernels_baseline() { return kTable; }
}  // namespace quiver::repro
