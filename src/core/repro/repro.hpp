// Internal: the reproducible-numerics kernels (issue #15). Their results are bitwise identical on
// every instruction set they are compiled for, for any batch size, row position and thread count:
//   - every multiply-add is one IEEE fused multiply-add (correctly rounded, so the hardware FMA of
//     AVX2/AVX-512 and std::fma on the baseline give the same bits), and nothing else is fused
//     (the sources are compiled with -ffp-contract=off);
//   - every sum runs in one fixed order that does not depend on blocking or vector width: a GEMM
//     output is the chain acc = fma(a[k], b[k], acc) for k = 0..K-1 (vectors run across outputs,
//     never across k); a softmax sum adds in index order;
//   - exp, log, expm1, tanh, sigmoid, erf and atan are the engine's own (fma and exact operations
//     only), not the C library's, whose results differ between glibc versions and FMA variants.
// One table per ISA (kernels.inc compiled three times: baseline.cpp, avx2.cpp, avx512.cpp), shared by
// the ONNX engine (its compiler picks the table once for the plan's target, onnx/numerics.hpp) and
// the forest engine. This header is included by those three sources: plain declarations only, so no
// inline function is compiled for one ISA and then shared with code that runs on another.
#pragma once
#include <cstddef>
#include <cstdint>

namespace quiver::repro {

// x86-64 levels the kernels are compiled for: AVX-512 (x86-64-v4), AVX2 + FMA (v3), baseline.
enum class Isa : uint8_t { Baseline, Avx2, Avx512 };
const char* isa_name(Isa isa);
bool parse_isa(const char* s, Isa& out);  // "avx512", "avx2", "baseline"
bool cpu_has_isa(Isa isa);
Isa best_isa();  // the widest this CPU runs

enum class Act : uint8_t { None, Relu, LeakyRelu, Sigmoid, Tanh, Clip };

// C = alpha * op(A) op(B) + beta * C, then + bias[n], then the activation (as onnx::gemm).
struct GemmCall {
  int64_t M = 0, N = 0, K = 0;
  const float* A = nullptr; int64_t lda = 0; bool transA = false;
  const float* B = nullptr; int64_t ldb = 0; bool transB = false;
  float* C = nullptr; int64_t ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
  const float* bias = nullptr;
  Act act = Act::None;
  float act_alpha = 0, act_beta = 0;
};

struct Kernels {
  const char* isa;  // "avx512", "avx2", "baseline"
  void (*gemm)(const GemmCall& g);
  // In place on `rows` rows of `cols` values `ld` apart.
  void (*activation)(float* c, int64_t rows, int64_t cols, int64_t ld, Act act, float alpha, float beta);
  void (*exp)(const float* x, float* y, int64_t n);
  void (*log)(const float* x, float* y, int64_t n);
  void (*tanh)(const float* x, float* y, int64_t n);
  void (*sigmoid)(const float* x, float* y, int64_t n);
  void (*erf)(const float* x, float* y, int64_t n);
  void (*atan)(const float* x, float* y, int64_t n);
  // Softmax (or LogSoftmax) of x viewed as [outer, n, inner] along n.
  void (*softmax)(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool log);
};

// The table of an ISA (the caller checked cpu_has_isa).
const Kernels& kernels(Isa isa);
// Defined only where the build compiled them (x86-64: all three; elsewhere: baseline).
const Kernels& kernels_baseline();
const Kernels& kernels_avx2();
const Kernels& kernels_avx512();

}  // namespace quiver::repro
