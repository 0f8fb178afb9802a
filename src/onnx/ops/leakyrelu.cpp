#include <cmath>
#include "onnx/emit.hpp"

#include "onnx/ops/unary.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(leakyrelu) {
  registry.add({"", "LeakyRelu", unary_builder(
      [](BuildContext& ctx) {
        const float alpha = ctx.attrs().get_float("alpha", 0.01f);
        return [alpha](auto x) {
          using T = decltype(x);
          return x >= T(0) ? x : T(alpha) * x;
        };
      })}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(leakyrelu) {
  emitters.add("", "LeakyRelu", exact([](Emit& e) {
    emit_unary("v >= 0 ? v : " + cfloat(e.attrs().get_float("alpha", 0.01f)) + " * v")(e);
  }));
}
}  // namespace quiver::onnx
