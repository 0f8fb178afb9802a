// Where(condition, X, Y): elementwise select with three-way numpy broadcasting; any element type.
#include "onnx/ops/mathops.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
// quiver compile: broadcasting select.
void emit_where(Emit& e) {
  e.rank_in(0);
  const std::string t = e.tin(1);
  e.shape("rt::Shp t{};\nif (!rt::broadcast(I0, I1, t) || !rt::broadcast(t, I2, O0)) fail(\"inputs do not broadcast\");\n");
  const std::string f = e.functor("Where", t + " operator()(bool c, " + t + " a, " + t + " b) const { return c ? a : b; }");
  e.compute("rt::ternary(x0, I0, x1, I1, x2, I2, y0, O0, " + f + "{});\n");
}

QUIVER_REGISTER_OPS(where) {
  registry.add({"", "Where", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 3);
                  ctx.expect_dtype(0, {DType::Bool});
                  const DType t = ctx.input_dtype(1);
                  if (ctx.input_dtype(2) != t)
                    ctx.fail("X and Y dtypes differ: " + dt_str(t) + " vs " + dt_str(ctx.input_dtype(2)), ctx.input_name(2));
                  ctx.set_output(0, t, broadcast_static_many(ctx));
                  return make_kernel([t](ExecContext& ec) {
                    const Tensor& c = ec.input(0);
                    const Tensor& x = ec.input(1);
                    const Tensor& y = ec.input(2);
                    std::vector<int64_t> od;
                    if (!broadcast_many({&c.dims(), &x.dims(), &y.dims()}, od))
                      ec.fail("shapes " + dims_to_string(c.dims()) + ", " + dims_to_string(x.dims()) + " and " +
                              dims_to_string(y.dims()) + " cannot be broadcast");
                    Tensor& out = ec.output(0, t, od);
                    const int64_t n = out.numel();
                    const bool* pc = c.data<bool>();
                    visit_dtype(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      const T* py = y.data<T>();
                      T* po = out.data<T>();
                      if (c.numel() == n && x.numel() == n && y.numel() == n) {
                        for (int64_t i = 0; i < n; ++i) po[i] = pc[i] ? px[i] : py[i];
                        return;
                      }
                      broadcast_iterate<3>(od, {&c.dims(), &x.dims(), &y.dims()},
                                           [&](int64_t o, const std::array<int64_t, 3>& off) {
                                             po[o] = pc[off[0]] ? px[off[1]] : py[off[2]];
                                           });
                    });
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(where) {
  emitters.add("", "Where", exact(emit_where));
}
}  // namespace quiver::onnx
