// Internal: the one GEMM entry point of the engine. Small shapes (the per-event HEP case) run on the
// register-tiled kernel of reproducible mode (core/repro) at the widest ISA this CPU has, looked up
// once per process; a CPU without AVX2 keeps the engine's own small kernel. Large shapes go to the
// BLAS library chosen at build time (OpenBLAS or oneDNN).
#pragma once
#include <cstdint>

#include "onnx/fusion.hpp"

namespace quiver::onnx {

struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  const float* A = nullptr; int64_t lda = 0; bool transA = false;
  const float* B = nullptr; int64_t ldb = 0; bool transB = false;
  float* C = nullptr; int64_t ldc = 0;
  float alpha = 1.0f;
  float beta = 0.0f;            // C = alpha*op(A)op(B) + beta*C
  const float* bias = nullptr;  // optional, added per column n after alpha/beta (length N)
  ActivationSpec act;           // optional fused activation
};

void gemm(const GemmArgs& g);
// Apply activation in place on rows x cols with leading dimension ld.
void apply_activation(float* C, int64_t rows, int64_t cols, int64_t ld, const ActivationSpec& act);
// Name of the large-shape backend ("openblas" / "dnnl") for reports.
const char* gemm_backend_name();
// The single-thread GEMM peak of this machine as gemm() reaches it: GFLOP/s of a 256 x 1600 x 64
// product (bench/gemm_bench's largest HEP shape, where the library runs at its best) over about
// `seconds`. For reports (`quiver bench --profile`: how close a model runs to the hardware).
double gemm_peak_gflops(double seconds);

}  // namespace quiver::onnx
