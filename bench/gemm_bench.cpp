// Which GEMM for the shapes HEP models use? C[M,N] = A[M,K] B[K,N], one thread, row-major.
//   engine   : quiver::onnx::gemm (small-shape kernel below its threshold, the build's BLAS above)
//   small    : the engine's register-blocked kernel forced for every shape
//   openblas : cblas_sgemm (Debian libopenblas, 1 thread)
//   dnnl     : dnnl_sgemm  (Debian oneDNN 2.6)
//   tiled    : the register-tiled kernel of reproducible mode (#15, core/repro), at this CPU's best ISA
// Shapes (M, N, K): per-event dense layers (M=1), 1x1 convolutions of ParticleNet/DeepJet
// (M=Cout, N=points, K=Cin), LSTM steps, and their batch-64 versions.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <dnnl.h>

#include <random>
#include <vector>

#include "core/repro/repro.hpp"
#include "onnx/blas.hpp"

extern "C" void openblas_set_num_threads(int);

namespace {

struct Mats {
  std::vector<float> a, b, c;
  Mats(int64_t M, int64_t N, int64_t K) : a(M * K), b(K * N), c(M * N) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (auto& x : a) x = nd(rng);
    for (auto& x : b) x = nd(rng);
  }
};

void set_flops(benchmark::State& st, int64_t M, int64_t N, int64_t K) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void BM_engine(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Mats m(M, N, K);
  quiver::onnx::GemmArgs g;
  g.M = M; g.N = N; g.K = K;
  g.A = m.a.data(); g.lda = K; g.B = m.b.data(); g.ldb = N; g.C = m.c.data(); g.ldc = N;
  for (auto _ : st) {
    quiver::onnx::gemm(g);
    benchmark::DoNotOptimize(m.c.data());
  }
  set_flops(st, M, N, K);
}

void BM_tiled(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Mats m(M, N, K);
  const quiver::repro::Kernels& k = quiver::repro::kernels(quiver::repro::best_isa());
  quiver::repro::GemmCall g;
  g.M = M; g.N = N; g.K = K;
  g.A = m.a.data(); g.lda = K; g.B = m.b.data(); g.ldb = N; g.C = m.c.data(); g.ldc = N;
  for (auto _ : st) {
    k.gemm(g);
    benchmark::DoNotOptimize(m.c.data());
  }
  set_flops(st, M, N, K);
}

void BM_openblas(benchmark::State& st) {
  openblas_set_num_threads(1);
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Mats m(M, N, K);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, m.a.data(), K, m.b.data(), N, 0.0f,
                m.c.data(), N);
    benchmark::DoNotOptimize(m.c.data());
  }
  set_flops(st, M, N, K);
}

void BM_dnnl(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Mats m(M, N, K);
  for (auto _ : st) {
    dnnl_sgemm('N', 'N', M, N, K, 1.0f, m.a.data(), K, m.b.data(), N, 0.0f, m.c.data(), N);
    benchmark::DoNotOptimize(m.c.data());
  }
  set_flops(st, M, N, K);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K"});
  for (auto s : std::vector<std::vector<int64_t>>{{1, 64, 16},  {1, 32, 64},   {1, 200, 50},  {1, 512, 256},
                                                  {16, 64, 16}, {32, 25, 16},  {64, 25, 64},  {64, 400, 64},
                                                  {128, 400, 64}, {64, 64, 16}, {64, 512, 256}, {256, 1600, 64},
                                                  {1600, 64, 64},
                                                  // DeepJet: per-sample 1x1 convolutions, LSTM steps at batch 64;
                                                  // interaction net: edge MLPs and one-hot products
                                                  {32, 25, 64}, {8, 25, 32}, {64, 200, 50}, {64, 600, 150},
                                                  {1, 100, 100}, {3540, 60, 60}, {3540, 30, 60}, {3540, 20, 30},
                                                  {30, 3540, 60}, {20, 60, 3540}, {300, 60, 44}, {64, 100, 100},
                                                  {1920, 3540, 60}, {1280, 60, 3540},
                                                  // DeepJet batched LSTM steps: [W | R] [4H, I + H] x [I + H, 64]
                                                  {600, 64, 158}, {200, 64, 54}, {200, 64, 58},
                                                  // TICL supercls at batch 64: 17 -> 100 -> 200 -> 100 -> 1
                                                  {64, 100, 17}, {64, 200, 100}, {64, 100, 200}, {64, 1, 100}})
    b->Args(s);
}

}  // namespace

BENCHMARK(BM_engine)->Apply(shapes);
BENCHMARK(BM_tiled)->Apply(shapes);
BENCHMARK(BM_openblas)->Apply(shapes);
BENCHMARK(BM_dnnl)->Apply(shapes);
BENCHMARK_MAIN();
