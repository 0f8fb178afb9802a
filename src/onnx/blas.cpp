#include "onnx/blas.hpp"
#include "onnx/simd.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#ifdef QUIVER_BLAS_DNNL
#include <dnnl.h>
extern "C" void omp_set_num_threads(int);  // Debian's oneDNN runs on GNU OpenMP
#else
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace quiver::onnx {

namespace {

#ifdef QUIVER_BLAS_DNNL
// Parallelism is across events (the caller's threads): each caller thread runs oneDNN with one
// OpenMP thread, so no OpenMP team is ever spun up behind the framework's back (with a team, a
// loaded machine turns a 100 us GEMM into 30 ms of spin-waiting).
inline void single_thread_omp() {
  thread_local bool done = false;
  if (!done) {
    omp_set_num_threads(1);
    done = true;
  }
}

// Debian's oneDNN 2.6 AVX-512 GEMM kernels corrupt the heap when a signal handler runs in the
// middle of a call (reproduced: a 0.7 ms SIGALRM timer during ParticleNet inference aborts in
// free(); an event loop's Ctrl-C handler does the same). Its AVX2 kernels are safe and, measured
// with bench/gemm_bench, as fast on the HEP shapes (~220 GFLOP/s on 64x400x64). Must run before the
// first oneDNN call, hence a static initializer; QUIVER_DNNL_MAX_ISA=ALL opts back in.
struct DnnlIsaCap {
  DnnlIsaCap() {
    const char* env = std::getenv("QUIVER_DNNL_MAX_ISA");
    if (env && std::string(env) == "ALL") return;
    dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2);
  }
} dnnl_isa_cap;
#endif

#ifndef QUIVER_BLAS_DNNL
// Intra-op parallelism is the caller's choice (event threads); BLAS must not spawn its own.
struct BlasInit {
  BlasInit() { openblas_set_num_threads(1); }
} blas_init;
#endif

inline float act1(float v, const ActivationSpec& a) {
  switch (a.kind) {
    case Activation::Relu: return v > 0 ? v : 0;
    case Activation::LeakyRelu: return v >= 0 ? v : v * a.alpha;
    case Activation::Sigmoid: return 1.0f / (1.0f + std::exp(-v));
    case Activation::Tanh: return std::tanh(v);
    case Activation::Clip: return std::min(std::max(v, a.alpha), a.beta);
    default: return v;
  }
}

// Small GEMM: C[m, :] = sum_k A[m,k] * B[k, :] with B row-major [K, N] (transB handled by the
// caller packing or by the strided path below). Inner loop over n vectorises; 4 rows of A at once
// reuse each B row from registers/L1.
QUIVER_HOT
void small_gemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                   float* C, int64_t ldc, float alpha, float beta) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    float* c0 = C + m * ldc; float* c1 = c0 + ldc; float* c2 = c1 + ldc; float* c3 = c2 + ldc;
    for (int64_t n = 0; n < N; ++n) {
      c0[n] = beta == 0 ? 0.f : beta * c0[n] / alpha;
      c1[n] = beta == 0 ? 0.f : beta * c1[n] / alpha;
      c2[n] = beta == 0 ? 0.f : beta * c2[n] / alpha;
      c3[n] = beta == 0 ? 0.f : beta * c3[n] / alpha;
    }
    const float* a0 = A + m * lda; const float* a1 = a0 + lda; const float* a2 = a1 + lda; const float* a3 = a2 + lda;
    for (int64_t k = 0; k < K; ++k) {
      const float* b = B + k * ldb;
      const float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
      for (int64_t n = 0; n < N; ++n) {
        const float bv = b[n];
        c0[n] += x0 * bv; c1[n] += x1 * bv; c2[n] += x2 * bv; c3[n] += x3 * bv;
      }
    }
    if (alpha != 1.0f)
      for (int64_t n = 0; n < N; ++n) { c0[n] *= alpha; c1[n] *= alpha; c2[n] *= alpha; c3[n] *= alpha; }
  }
  for (; m < M; ++m) {
    float* c = C + m * ldc;
    for (int64_t n = 0; n < N; ++n) c[n] = beta == 0 ? 0.f : beta * c[n] / alpha;
    const float* a = A + m * lda;
    for (int64_t k = 0; k < K; ++k) {
      const float x = a[k];
      const float* b = B + k * ldb;
      for (int64_t n = 0; n < N; ++n) c[n] += x * b[n];
    }
    if (alpha != 1.0f)
      for (int64_t n = 0; n < N; ++n) c[n] *= alpha;
  }
}

QUIVER_HOT
void epilogue(float* C, int64_t M, int64_t N, int64_t ldc, const float* bias, ActivationSpec act) {
  for (int64_t m = 0; m < M; ++m) {
    float* c = C + m * ldc;
    if (bias)
      for (int64_t n = 0; n < N; ++n) c[n] += bias[n];
    switch (act.kind) {
      case Activation::None: break;
      case Activation::Relu:
        for (int64_t n = 0; n < N; ++n) c[n] = c[n] > 0 ? c[n] : 0;
        break;
      case Activation::LeakyRelu:
        for (int64_t n = 0; n < N; ++n) c[n] = c[n] >= 0 ? c[n] : c[n] * act.alpha;
        break;
      case Activation::Clip:
        for (int64_t n = 0; n < N; ++n) c[n] = std::min(std::max(c[n], act.alpha), act.beta);
        break;
      default:
        for (int64_t n = 0; n < N; ++n) c[n] = act1(c[n], act);
    }
  }
}

}  // namespace

void apply_activation(float* C, int64_t rows, int64_t cols, int64_t ld, const ActivationSpec& act) {
  if (act.kind != Activation::None) epilogue(C, rows, cols, ld, nullptr, act);
}

const char* gemm_backend_name() {
#ifdef QUIVER_BLAS_DNNL
  return "dnnl";
#else
  return "openblas";
#endif
}

void gemm(const GemmArgs& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n) g.C[m * g.ldc + n] = g.beta == 0 ? 0.f : g.beta * g.C[m * g.ldc + n];
    epilogue(g.C, g.M, g.N, g.ldc, g.bias, g.act);
    return;
  }
  // Tiny products: the library's dispatch overhead dominates (bench/gemm_bench: the plain kernel
  // wins up to ~1k multiply-adds; oneDNN's JIT kernels win above, even at M = 1).
#ifdef QUIVER_BLAS_DNNL
  const int64_t small_limit = 1536;
#else
  const int64_t small_limit = 32 * 32 * 32;
#endif
  const bool small = !g.transA && !g.transB && g.alpha != 0.0f && g.M * g.N * g.K <= small_limit;
  if (small) {
    small_gemm_nn(g.M, g.N, g.K, g.A, g.lda, g.B, g.ldb, g.C, g.ldc, g.alpha, g.beta);
  } else {
#ifdef QUIVER_BLAS_DNNL
    single_thread_omp();
    dnnl_sgemm(g.transA ? 'T' : 'N', g.transB ? 'T' : 'N', g.M, g.N, g.K, g.alpha, g.A, g.lda, g.B, g.ldb, g.beta,
               g.C, g.ldc);
#else
    cblas_sgemm(CblasRowMajor, g.transA ? CblasTrans : CblasNoTrans, g.transB ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(g.M), static_cast<blasint>(g.N), static_cast<blasint>(g.K), g.alpha, g.A,
                static_cast<blasint>(g.lda), g.B, static_cast<blasint>(g.ldb), g.beta, g.C, static_cast<blasint>(g.ldc));
#endif
  }
  if (g.bias || g.act.kind != Activation::None) epilogue(g.C, g.M, g.N, g.ldc, g.bias, g.act);
}

}  // namespace quiver::onnx
