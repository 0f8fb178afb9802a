#include "aot/emitter_target.hpp"

#include "onnx/emit.hpp"

namespace quiver::aot {
namespace {

class Emitters final : public onnx::DeviceKernels {
 public:
  onnx::KernelChoice choose(const onnx::StepQuery& q) const override {
    onnx::KernelChoice c;
    const onnx::Emitter* emit = onnx::EmitterRegistry::instance().find(q.node.domain(), q.node.op_type());
    if (q.has_subgraphs) {
      c.why = "control flow (subgraph bodies) is not emitted";
      return c;
    }
    if (!emit) {
      c.why = "no code emitter for " + (q.node.domain().empty() ? "" : q.node.domain() + "::") + q.node.op_type();
      return c;
    }
    onnx::Emit e(q);
    try {
      (*emit)(e);
    } catch (const onnx::EmitRefused& r) {
      c.why = r.what();
      return c;
    }
    auto step = e.take();
    if (q.node.target().reproducible() && !step->bitwise) {
      c.why = "no reproducible emission for " + q.node.op_type() +
              " (quiver compile --reproducible emits only code bitwise equal to the engine's reproducible mode)";
      return c;
    }
    c.placement = onnx::Placement::Device;
    c.kernel = std::move(step);
    return c;
  }
};

}  // namespace

const onnx::Target& emitter_target(bool reproducible) {
  static const Emitters lib;
  static const onnx::Target t{"aot", &lib};
  // Constant folding runs the engine's reproducible kernels: any ISA gives the same bits.
  static const onnx::Target r{"aot (reproducible)", &lib, onnx::Numerics::Reproducible, repro::best_isa()};
  return reproducible ? r : t;
}

}  // namespace quiver::aot
