// Expand: numpy-style (bidirectional) broadcast of the input to a shape. Broadcast dims are filled by
// replicating already-written blocks with memcpy.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

// quiver compile: the target shape is read in the shape pass (a constant or computed from dims).
void emit_expand(Emit& e) {
  e.tin(0);
  if (!e.in(1).shape || e.in(1).shape->size() != 1 || (*e.in(1).shape)[0] < 0) e.refuse("the shape input's length is not static");
  const int64_t n = (*e.in(1).shape)[0];
  if (n > 8) e.refuse("rank above 8");
  e.read_values(1);
  e.dims_only(1);
  e.shape("rt::Shp s{};\ns.r = " + std::to_string(n) + ";\nfor (int j = 0; j < s.r; ++j) s.d[j] = static_cast<int64_t>(x1[j]);\n"
          "if (!rt::broadcast(I0, s, O0)) fail(\"shape does not broadcast\");\n");
  e.compute("rt::expand(x0, I0, y0, O0);\n");
}

QUIVER_REGISTER_OPS(expand) {
  registry.add({"", "Expand", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::I64});
                  const DType t = ctx.input_dtype(0);
                  std::optional<std::vector<int64_t>> shape;
                  auto spec = ctx.const_ints(1);
                  if (spec && ctx.input(0).shape) {
                    // Output rank is max(ranks); a spec dim of 1 takes the input dim, anything else is the spec dim.
                    const auto& in = *ctx.input(0).shape;
                    const size_t r = std::max(in.size(), spec->size());
                    shape = std::vector<int64_t>(r);
                    for (size_t i = 0; i < r; ++i) {
                      const int64_t sv = i < r - spec->size() ? 1 : (*spec)[i - (r - spec->size())];
                      const int64_t iv = i < r - in.size() ? 1 : in[i - (r - in.size())];
                      (*shape)[i] = sv == 1 ? iv : sv;
                    }
                  } else if (ctx.input(1).shape && ctx.input(1).shape->size() == 1 && (*ctx.input(1).shape)[0] >= 0 &&
                             ctx.input(0).shape) {
                    shape = std::vector<int64_t>(std::max<size_t>((*ctx.input(1).shape)[0], ctx.input(0).shape->size()), -1);
                  }
                  ctx.set_output(0, t, shape);
                  return make_kernel([t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const std::vector<int64_t> spec = read_ints(ec.input(1));
                    for (auto v : spec)
                      if (v < 0) ec.fail("negative dimension in shape " + dims_to_string(spec), "shape");
                    std::vector<int64_t> od;
                    if (!broadcast_dims(x.dims(), spec, od))
                      ec.fail("cannot broadcast " + dims_to_string(x.dims()) + " to " + dims_to_string(spec));
                    Tensor& y = ec.output(0, t, od);
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      broadcast_copy(x.data<T>(), x.dims(), y.data<T>(), od);
                    });
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(expand) {
  emitters.add("", "Expand", exact(emit_expand));
}
}  // namespace quiver::onnx
