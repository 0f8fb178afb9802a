// The reproducible kernels for baseline x86-64 (SSE2, no FMA instruction): 4-float vectors. Each
// multiply-add is an exact float fma computed in double arithmetic, so the bits equal the FMA ISAs'.
#include "core/repro/repro.hpp"

namespace quiver::repro {
namespace {
typedef float V __attribute__((vector_size(16)));
constexpr int W = 4;
constexpr const char* kIsa = "baseline";

#include "core/repro/soft_fma.inc"
[[gnu::always_inline]] inline float fma(float a, float b, float c) { return soft_fma(a, b, c); }
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
