// StringConcat(X, Y): elementwise concatenation of two string tensors with numpy broadcasting.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(stringconcat) {
  registry.add({"", "StringConcat", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(0, {DType::String});
                  ctx.expect_dtype(1, {DType::String});
                  ctx.set_output(0, DType::String, broadcast_static(ctx.input(0).shape, ctx.input(1).shape));
                  return make_kernel([](ExecContext& ec) {
                    const Tensor& a = ec.input(0);
                    const Tensor& b = ec.input(1);
                    std::vector<int64_t> od;
                    if (!broadcast_dims(a.dims(), b.dims(), od))
                      ec.fail("shapes " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()) + " cannot be broadcast");
                    Tensor& out = ec.output(0, DType::String, od);
                    const std::string* pa = a.data<std::string>();
                    const std::string* pb = b.data<std::string>();
                    std::string* po = out.data<std::string>();
                    broadcast_iterate<2>(od, {&a.dims(), &b.dims()}, [&](int64_t o, const std::array<int64_t, 2>& off) {
                      std::string& s = po[o];
                      s.assign(pa[off[0]]);
                      s.append(pb[off[1]]);
                    });
                  });
                }});
}
}  // namespace quiver::onnx
