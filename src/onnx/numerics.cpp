#include "onnx/numerics.hpp"

#include "core/repro/mode.hpp"
#include "quiver/core/error.hpp"

namespace quiver::onnx {

Target cpu_target(const LoadOptions& options) {
  const repro::Mode mode = repro::mode_of(options);
  Target t;
  if (mode.reproducible) {
    t.numerics = Numerics::Reproducible;
    t.isa = mode.isa;
    t.name = std::string("cpu (reproducible, ") + isa_name(t.isa) + ")";
  }
  return t;
}

void expect_default_numerics(const LoadOptions& options, const std::string& device) {
  auto it = options.params.find("numerics");
  const std::string numerics = it == options.params.end() ? std::string() : it->second;
  if (numerics.empty() || numerics == "default") return;
  throw_error(ErrorCode::Unsupported,
              "numerics '" + numerics + "' runs on the CPU only; device '" + device +
                  "' has no reproducible kernels (load with device=cpu)",
              {options.name});
}

const repro::Kernels& repro_kernels(const Target& target) { return repro::kernels(target.isa); }

Blas::Blas(const Target& target) {
  if (target.reproducible()) repro_ = &repro_kernels(target);
}

namespace {
repro::Act repro_act(Activation a) {
  switch (a) {
    case Activation::None: return repro::Act::None;
    case Activation::Relu: return repro::Act::Relu;
    case Activation::LeakyRelu: return repro::Act::LeakyRelu;
    case Activation::Sigmoid: return repro::Act::Sigmoid;
    case Activation::Tanh: return repro::Act::Tanh;
    case Activation::Clip: return repro::Act::Clip;
  }
  return repro::Act::None;
}
}  // namespace

void Blas::gemm(const GemmArgs& g) const {
  if (!repro_) {
    onnx::gemm(g);
    return;
  }
  repro::GemmCall c;
  c.M = g.M; c.N = g.N; c.K = g.K;
  c.A = g.A; c.lda = g.lda; c.transA = g.transA;
  c.B = g.B; c.ldb = g.ldb; c.transB = g.transB;
  c.C = g.C; c.ldc = g.ldc;
  c.alpha = g.alpha; c.beta = g.beta;
  c.bias = g.bias;
  c.act = repro_act(g.act.kind);
  c.act_alpha = g.act.alpha; c.act_beta = g.act.beta;
  repro_->gemm(c);
}

void Blas::activation(float* c, int64_t rows, int64_t cols, int64_t ld, const ActivationSpec& act) const {
  if (!repro_) {
    apply_activation(c, rows, cols, ld, act);
    return;
  }
  if (act.kind != Activation::None) repro_->activation(c, rows, cols, ld, repro_act(act.kind), act.alpha, act.beta);
}

}  // namespace quiver::onnx
