// PRelu: y = x < 0 ? slope * x : x, slope broadcast to x (unidirectional). Before opset 7 a 1-D slope
// of x's channel count applies per channel (axis 1), as in the old Caffe2 semantics.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(prelu) {
  registry.add({"", "PRelu", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  const DType t = ctx.input_dtype(0);
                  if (ctx.input_dtype(1) != t) ctx.fail("slope dtype " + dt_str(ctx.input_dtype(1)) + " differs from input dtype " + dt_str(t));
                  if (!dtype_is_float(t) && !dtype_is_integer(t))
                    ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  const bool legacy = ctx.opset() < 7;
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, legacy](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& s0 = ec.input(1);
                    Tensor slope_view;
                    const Tensor* s = &s0;
                    if (legacy && s0.rank() == 1 && x.rank() >= 2 && s0.dim(0) == x.dim(1) && s0.dim(0) != 1) {
                      std::vector<int64_t> sd(x.rank() - 1, 1);
                      sd[0] = s0.dim(0);
                      slope_view = Tensor::view(t, sd, s0.raw());
                      s = &slope_view;
                    }
                    std::vector<int64_t> od;
                    if (!broadcast_dims(x.dims(), s->dims(), od) || od != x.dims())
                      ec.fail("slope shape " + dims_to_string(s0.dims()) + " cannot be broadcast to input shape " + dims_to_string(x.dims()), "slope");
                    Tensor& y = ec.output(0, t, od);
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      broadcast_binary<T, T, T>(x, *s, y, [](T xv, T sv) {
                        if constexpr (std::is_unsigned_v<T>) {
                          return xv;
                        } else {
                          const auto v = to_compute(xv);
                          return v < decltype(v)(0) ? from_compute<T>(to_compute(sv) * v) : xv;
                        }
                      });
                    });
                  });
                }}, Repro::Exact);
}
}  // namespace quiver::onnx
