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
    c.placement = onnx::Placement::Device;
    c.kernel = e.take();
    return c;
  }
};

}  // namespace

const onnx::Target& emitter_target() {
  static const Emitters lib;
  static const onnx::Target t{"aot", &lib};
  return t;
}

}  // namespace quiver::aot
