// BitShift (unsigned integers): direction "LEFT" or "RIGHT"; shifting by >= the bit width gives 0.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(bitshift) {
  registry.add({"", "BitShift", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const std::string dir = ctx.attrs().req_string("direction");
                  if (dir == "LEFT")
                    return int_binary_builder(
                        [](auto a, auto b) {
                          using T = decltype(a);
                          return b >= T(sizeof(T) * 8) ? T(0) : T(a << b);
                        },
                        /*unsigned_only=*/true)(ctx);
                  if (dir == "RIGHT")
                    return int_binary_builder(
                        [](auto a, auto b) {
                          using T = decltype(a);
                          return b >= T(sizeof(T) * 8) ? T(0) : T(a >> b);
                        },
                        /*unsigned_only=*/true)(ctx);
                  ctx.fail("direction must be LEFT or RIGHT, got '" + dir + "'");
                }});
}
}  // namespace quiver::onnx
