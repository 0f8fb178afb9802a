#include "onnx/blas.hpp"

#include "core/repro/repro.hpp"
#include "onnx/simd.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifdef QUIVER_BLAS_DNNL
#include <dnnl.h>
#include <pthread.h>
#include <signal.h>
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
// middle of a call (reproduced: a 0.3 ms SIGALRM timer with an empty handler during ParticleNet
// inference aborts in free(); a Ctrl-C handler or a SIGPROF sampling profiler does the same). The
// AVX2 kernels are safe but up to 1.6x slower on the wide HEP GEMMs, so: the AVX-512 kernels run
// with asynchronous signals blocked on the calling thread (a signal that arrives meanwhile is
// delivered when the call returns, or to another thread); the mask costs ~0.3 us per call, paid only
// by library-sized products. QUIVER_DNNL_MAX_ISA=AVX2 caps the ISA instead (no mask needed).
// Must run before the first oneDNN call, hence a static initializer.
struct DnnlIsaPolicy {
  bool mask_signals = true;
  sigset_t blocked;
  DnnlIsaPolicy() {
    sigfillset(&blocked);
    // Synchronous faults cannot be deferred; blocking them would only turn a crash into a hang.
    for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) sigdelset(&blocked, s);
    const char* env = std::getenv("QUIVER_DNNL_MAX_ISA");
    if (env && std::string(env) == "AVX2") {
      dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2);
      mask_signals = false;
    } else if (dnnl_get_effective_cpu_isa() <= dnnl_cpu_isa_avx2) {
      mask_signals = false;  // no AVX-512 on this CPU: nothing to protect
    }
  }
} dnnl_isa;

// Blocks asynchronous signals for the lifetime of the object (see DnnlIsaPolicy).
class SignalGuard {
 public:
  SignalGuard() : active_(dnnl_isa.mask_signals) {
    if (active_) pthread_sigmask(SIG_BLOCK, &dnnl_isa.blocked, &old_);
  }
  ~SignalGuard() {
    if (active_) pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  bool active_;
  sigset_t old_;
};
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

// Small GEMM, C = alpha * A[M,K] B[K,N] + beta * C with B row-major: the per-event HEP case (dense
// layers at M = 1, 1x1 convolutions of one jet). Register tiles of MR rows x NR columns: the
// accumulators stay in vector registers for the whole K loop (32 columns = two AVX-512 or four
// AVX2 registers per row), each B row segment is loaded once per tile and each A element broadcast.
// GCC vector extensions: lowered to zmm in the x86-64-v4 clone, ymm pairs in v3, xmm in the baseline.
// Loads and stores go through memcpy (unaligned moves; a cast pointer would be assumed aligned).
typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
template <class V>
[[gnu::always_inline]] inline V vload(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}

template <int MR, int NV, class V>
[[gnu::always_inline]] inline void gemm_tile_v(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                                               float* C, int64_t ldc, float alpha, float beta) {
  constexpr int W = sizeof(V) / sizeof(float);
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = vload<V>(b + v * W);
    for (int r = 0; r < MR; ++r) {
      const float a = A[r * lda + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * bv[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      float* c = C + r * ldc + v * W;
      const V y = beta == 0.0f ? alpha * acc[r][v] : alpha * acc[r][v] + beta * vload<V>(c);
      __builtin_memcpy(c, &y, sizeof(V));
    }
}

// Single column (the N remainder).
template <int MR>
[[gnu::always_inline]] inline void gemm_col(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                                            float* C, int64_t ldc, float alpha, float beta) {
  float acc[MR] = {};
  for (int64_t k = 0; k < K; ++k)
    for (int r = 0; r < MR; ++r) acc[r] += A[r * lda + k] * B[k * ldb];
  for (int r = 0; r < MR; ++r) C[r * ldc] = beta == 0.0f ? alpha * acc[r] : alpha * acc[r] + beta * C[r * ldc];
}

// All column tiles of an MR-row panel: 32 wide, then 16, 8, and single columns.
template <int MR>
[[gnu::always_inline]] inline void gemm_panel(int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                                              int64_t ldb, float* C, int64_t ldc, float alpha, float beta) {
  int64_t n = 0;
  for (; n + 32 <= N; n += 32) gemm_tile_v<MR, 2, v16f>(K, A, lda, B + n, ldb, C + n, ldc, alpha, beta);
  if (n + 16 <= N) {
    gemm_tile_v<MR, 1, v16f>(K, A, lda, B + n, ldb, C + n, ldc, alpha, beta);
    n += 16;
  }
  if (n + 8 <= N) {
    gemm_tile_v<MR, 1, v8f>(K, A, lda, B + n, ldb, C + n, ldc, alpha, beta);
    n += 8;
  }
  for (; n < N; ++n) gemm_col<MR>(K, A, lda, B + n, ldb, C + n, ldc, alpha, beta);
}

QUIVER_HOT
void small_gemm_nn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                   float* C, int64_t ldc, float alpha, float beta) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) gemm_panel<4>(N, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, alpha, beta);
  switch (M - m) {
    case 3: gemm_panel<3>(N, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, alpha, beta); break;
    case 2: gemm_panel<2>(N, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, alpha, beta); break;
    case 1: gemm_panel<1>(N, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, alpha, beta); break;
    default: break;
  }
}

// gemv_rows's parts, always inlined as gemm_tile_v is: a 64-byte vector may not cross a call
// boundary outside the AVX-512 clone (clang refuses it there), so vectors go by reference.
// s += row a's last K % 16 values times x's (xr), both zero-padded.
[[gnu::always_inline]] inline void gemv_add_tail(v16f& s, const float* a, int64_t kv, int64_t K, const v16f& xr) {
  float at[16] = {};
  std::memcpy(at, a + kv, sizeof(float) * static_cast<size_t>(K - kv));
  s += vload<v16f>(at) * xr;
}
[[gnu::always_inline]] inline void gemv_store(const v16f& acc, float* c, float alpha, float beta) {
  float s = 0;
  for (int i = 0; i < 16; ++i) s += acc[i];
  *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
}
[[gnu::always_inline]] inline void gemv_rows_v(int64_t M, int64_t K, const float* A, int64_t lda, const float* x, float* C,
                                               int64_t ldc, float alpha, float beta) {
  const int64_t kv = K - K % 16;
  float xt[16] = {};  // x's last K % 16 values, zero-padded to one vector
  std::memcpy(xt, x + kv, sizeof(float) * static_cast<size_t>(K - kv));
  const v16f xr = vload<v16f>(xt);
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    const float* a = A + m * lda;
    v16f s0{}, s1{}, s2{}, s3{};
    for (int64_t k = 0; k < kv; k += 16) {
      const v16f xv = vload<v16f>(x + k);
      s0 += vload<v16f>(a + k) * xv;
      s1 += vload<v16f>(a + lda + k) * xv;
      s2 += vload<v16f>(a + 2 * lda + k) * xv;
      s3 += vload<v16f>(a + 3 * lda + k) * xv;
    }
    if (kv < K) {
      gemv_add_tail(s0, a, kv, K, xr);
      gemv_add_tail(s1, a + lda, kv, K, xr);
      gemv_add_tail(s2, a + 2 * lda, kv, K, xr);
      gemv_add_tail(s3, a + 3 * lda, kv, K, xr);
    }
    gemv_store(s0, C + m * ldc, alpha, beta);
    gemv_store(s1, C + (m + 1) * ldc, alpha, beta);
    gemv_store(s2, C + (m + 2) * ldc, alpha, beta);
    gemv_store(s3, C + (m + 3) * ldc, alpha, beta);
  }
  for (; m < M; ++m) {
    const float* a = A + m * lda;
    v16f s0{};
    for (int64_t k = 0; k < kv; k += 16) s0 += vload<v16f>(a + k) * vload<v16f>(x + k);
    if (kv < K) gemv_add_tail(s0, a, kv, K, xr);
    gemv_store(s0, C + m * ldc, alpha, beta);
  }
}

// C[m] = alpha * dot(A row m, x) + beta * C[m]: a product of one column (N = 1, B's column x
// contiguous), e.g. TICL supercls's 100 -> 1 output layer. The register-tiled kernel vectorises
// along N, so there one lane of each 16 did work in a chain of K dependent multiply-adds per row
// (64 x 1 x 100: 1.8 us, oneDNN 0.45 us); here 16 lanes run along K, 4 rows at a time so their
// sums are independent chains. The sums' order differs from a GEMM's: default numerics only.
QUIVER_HOT
void gemv_rows(int64_t M, int64_t K, const float* A, int64_t lda, const float* x, float* C, int64_t ldc, float alpha,
               float beta) {
  gemv_rows_v(M, K, A, lda, x, C, ldc, alpha, beta);
}

QUIVER_HOT
void epilogue(float* C, int64_t M, int64_t N, int64_t ldc, const float* bias, ActivationSpec act) {
  // Contiguous rows without a bias are one run: rows of 20-60 values otherwise end in scalar tails
  // (perf, interaction net at batch 1: the ReLU after its tiled products was 8 % of the call).
  if (!bias && ldc == N) {
    N *= M;
    M = 1;
  }
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

// Rows [m0, m0 + mb) of g (B not transposed) on the tiled kernel: the bias is added in the tile, the
// activation is the default mode's own, applied while the rows are in cache.
void tiled_rows(const repro::Kernels& k, const GemmArgs& g, int64_t m0, int64_t mb) {
  repro::GemmCall c;
  c.M = mb; c.N = g.N; c.K = g.K;
  c.A = g.A + (g.transA ? m0 : m0 * g.lda); c.lda = g.lda; c.transA = g.transA;
  c.B = g.B; c.ldb = g.ldb;
  c.C = g.C + m0 * g.ldc; c.ldc = g.ldc;
  c.alpha = g.alpha; c.beta = g.beta;
  c.bias = g.bias;
  k.gemm(c);
  if (g.act.kind != Activation::None) epilogue(c.C, mb, g.N, g.ldc, nullptr, g.act);
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

double gemm_peak_gflops(double seconds) {
  constexpr int64_t M = 256, N = 1600, K = 64;
  std::vector<float> a(M * K), b(K * N), c(M * N);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) * 0.25f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 5) * 0.5f;
  GemmArgs g;
  g.M = M; g.N = N; g.K = K;
  g.A = a.data(); g.lda = K; g.B = b.data(); g.ldb = N; g.C = c.data(); g.ldc = N;
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) gemm(g);  // the library's first-call work
  // Best of short windows: the peak, not an average that a moment of load on the machine drags.
  double best = 0;
  const auto end = clock::now() + std::chrono::duration<double>(seconds);
  do {
    const auto t0 = clock::now();
    for (int i = 0; i < 20; ++i) gemm(g);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, 20 * 2.0 * M * N * K / s / 1e9);
  } while (clock::now() < end);
  return best;
}

void gemm(const GemmArgs& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n) g.C[m * g.ldc + n] = g.beta == 0 ? 0.f : g.beta * g.C[m * g.ldc + n];
    epilogue(g.C, g.M, g.N, g.ldc, g.bias, g.act);
    return;
  }
  // Small products: the library's dispatch overhead (and the signal mask around it) dominates. They
  // run on the register-tiled kernel of reproducible mode (core/repro, #15: 6 rows x 4 vectors of
  // accumulators, the column tail as one masked vector, transA by strides) at this CPU's widest ISA;
  // bench/gemm_bench, AVX-512, ns per call, tiled / the engine's older small kernel / oneDNN:
  // 32x25x64 (a DeepJet 1x1 convolution of one jet) 1027 / 2195 / 1209, 1x100x100 283 / 487 / 438,
  // 1x512x256 3467 / 7686 / 4724, 64x25x64 1943 / 2128 / 2017; from ~600k multiply-adds up oneDNN
  // is as fast or faster (64x200x50 9474 / - / 8770, 64x400x64 29 253 / - / 20 572). Products of a
  // few rows (dense layers of one event) stay tiled at any size. Without AVX2 the tiled kernel's
  // fma is a library call, so the baseline keeps the engine's own small kernel (no transposes).
  const int64_t macs = g.M * g.N * g.K;
  const bool has_epilogue = g.bias || g.act.kind != Activation::None;
  // One output column with A's rows and B's column contiguous: row dot products (gemv_rows).
  if (g.N == 1 && !g.transA && (g.transB || g.ldb == 1) && g.alpha != 0.0f) {
    gemv_rows(g.M, g.K, g.A, g.lda, g.B, g.C, g.ldc, g.alpha, g.beta);
    if (has_epilogue) epilogue(g.C, g.M, 1, g.ldc, g.bias, g.act);
    return;
  }
  static const repro::Kernels* const tiled =
      repro::best_isa() == repro::Isa::Baseline ? nullptr : &repro::kernels(repro::best_isa());
  if (tiled && !g.transB && g.alpha != 0.0f && (macs <= (int64_t{1} << 18) || g.M <= 4)) {
    tiled_rows(*tiled, g, 0, g.M);
    return;
  }
#ifdef QUIVER_BLAS_DNNL
  const int64_t small_limit = 65536;
#else
  const int64_t small_limit = 32 * 32 * 32;
#endif
  if (!tiled && !g.transA && !g.transB && g.alpha != 0.0f && macs <= small_limit) {
    small_gemm_nn(g.M, g.N, g.K, g.A, g.lda, g.B, g.ldb, g.C, g.ldc, g.alpha, g.beta);
    if (has_epilogue) epilogue(g.C, g.M, g.N, g.ldc, g.bias, g.act);
    return;
  }
  // With a bias or activation, a tall product runs in row blocks of ~64 KiB of C, each followed by
  // its epilogue while the block is still in cache: one epilogue pass over a C of tens of MB
  // (interaction net at batch 64: 226k x 60) costs a full extra read and write of it from memory.
  // Without an epilogue the product is one library call.
  const int64_t block_rows =
      has_epilogue ? std::max<int64_t>(64, (int64_t{64} << 10) / (4 * std::max<int64_t>(g.N, 1))) : g.M;
  // Such blocks of at most 64 columns and K <= 128 run on the tiled kernel with AVX-512: N is then
  // one column strip of its 6 x 64 register tile (each row of A read once) and B (<= 32 KiB) stays
  // in L1, while oneDNN packs B again for every block. The interaction net's edge MLP per jet, us per
  // product on Zen 5, oneDNN blocks / tiled: 3540x60x60 + bias + ReLU, transA, 210 / 151; 3540x30x60
  // + bias + ReLU 109 / 81; 3540x20x30 + bias 58 / 38.
  static const bool tiled_tall = tiled && repro::best_isa() == repro::Isa::Avx512;
  const bool tall_on_tiled = tiled_tall && has_epilogue && !g.transB && g.alpha != 0.0f && g.N <= 64 && g.K <= 128;
  for (int64_t m0 = 0; m0 < g.M; m0 += block_rows) {
    const int64_t mb = std::min(block_rows, g.M - m0);
    if (tall_on_tiled) {
      tiled_rows(*tiled, g, m0, mb);
      continue;
    }
    const float* A = g.A + (g.transA ? m0 : m0 * g.lda);
    float* C = g.C + m0 * g.ldc;
#ifdef QUIVER_BLAS_DNNL
    single_thread_omp();
    SignalGuard guard;
    dnnl_sgemm(g.transA ? 'T' : 'N', g.transB ? 'T' : 'N', mb, g.N, g.K, g.alpha, A, g.lda, g.B, g.ldb, g.beta, C,
               g.ldc);
#else
    cblas_sgemm(CblasRowMajor, g.transA ? CblasTrans : CblasNoTrans, g.transB ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(mb), static_cast<blasint>(g.N), static_cast<blasint>(g.K), g.alpha, A,
                static_cast<blasint>(g.lda), g.B, static_cast<blasint>(g.ldb), g.beta, C, static_cast<blasint>(g.ldc));
#endif
    if (has_epilogue) epilogue(C, mb, g.N, g.ldc, g.bias, g.act);
  }
}

}  // namespace quiver::onnx
