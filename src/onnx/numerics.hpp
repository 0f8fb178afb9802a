// Internal: the numerics a CPU plan is compiled for (issue #15) and the kernels that follow from it.
// LoadOptions::params["numerics"] = "default" | "reproducible" and params["isa"] (else the QUIVER_ISA
// environment variable) = "avx512" | "avx2" | "baseline" | "auto" make the CPU target once at load;
// builders read it through BuildContext::target() and keep the kernel they chose (nothing is looked
// up per call). In reproducible mode an op runs only if its OpDef says how it stays bitwise stable
// (OpDef::repro); the compiler refuses the others at load, naming node and op.
#pragma once
#include <string>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "core/repro/repro.hpp"
#include "onnx/blas.hpp"
#include "onnx/target.hpp"
#include "quiver/core/model.hpp"

namespace quiver::onnx {

using repro::best_isa;
using repro::cpu_has_isa;
using repro::isa_name;

// The CPU target of `options` (numerics, ISA: core/repro/mode.hpp says what is read and its errors).
Target cpu_target(const LoadOptions& options);
// Device targets have no reproducible kernels: an error when `options` asks for them.
void expect_default_numerics(const LoadOptions& options, const std::string& device);

// The reproducible kernels of the target's ISA (target.reproducible()).
const repro::Kernels& repro_kernels(const Target& target);

// The GEMM (with its epilogue) a kernel calls, chosen once when the kernel is built.
class Blas {
 public:
  Blas() = default;  // the default GEMM
  explicit Blas(const Target& target);
  void gemm(const GemmArgs& g) const;
  void activation(float* c, int64_t rows, int64_t cols, int64_t ld, const ActivationSpec& act) const;
  const repro::Kernels* repro() const { return repro_; }

 private:
  const repro::Kernels* repro_ = nullptr;  // null: the default onnx::gemm
};

// While in scope, this thread treats subnormal floats as zero, inputs (DAZ) and results (FTZ); the
// caller's MXCSR comes back when it ends, also when a kernel throws. For default-numerics kernels
// whose products go subnormal: an LSTM's saturated gates times small states cost a microcode assist
// per operation (DeepJet at batch 64: 190 -> 235 inf/s flushed). The values lost are below 1.2e-38.
// Never in reproducible mode, whose bits must not depend on the caller's MXCSR. (The compiled code
// has its own, rt::FlushSubnormals in src/aot/runtime.inc: its output includes nothing of ours.)
class SubnormalsAsZero {
 public:
  explicit SubnormalsAsZero(bool on) {
#if defined(__SSE__)
    if (!on) return;
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | kFtz | kDaz);
    active_ = true;
#else
    (void)on;
#endif
  }
  ~SubnormalsAsZero() {
#if defined(__SSE__)
    if (active_) _mm_setcsr(saved_);
#endif
  }
  SubnormalsAsZero(const SubnormalsAsZero&) = delete;
  SubnormalsAsZero& operator=(const SubnormalsAsZero&) = delete;

 private:
  static constexpr unsigned kFtz = 0x8000, kDaz = 0x0040;
  unsigned saved_ = 0;
  bool active_ = false;
};

}  // namespace quiver::onnx
