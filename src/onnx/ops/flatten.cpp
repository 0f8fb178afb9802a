// Flatten: 2-D view [prod(dims[:axis]), prod(dims[axis:])] of the input; no copy.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

// quiver compile: a view of input 0 with the output's dims.
void emit_flatten(Emit& e) {
  const int r = e.rank_in(0);
  int64_t a = e.attrs().get_int("axis", 1);
  if (a < 0) a += r;
  if (a < 0 || a > r) e.refuse("axis out of range");
  e.shape("O0.r = 2; O0.d[0] = I0.span(0, " + std::to_string(a) + "); O0.d[1] = I0.span(" + std::to_string(a) + ", I0.r);\n");
  e.view(0);
}

QUIVER_REGISTER_OPS(flatten) {
  OpDef d{"", "Flatten", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
            ctx.expect_inputs(1, 1);
            const int64_t axis = ctx.attrs().get_int("axis", 1);
            std::optional<std::vector<int64_t>> shape = std::vector<int64_t>{-1, -1};
            const auto& in = ctx.input(0).shape;
            auto resolve = [](int64_t axis, int64_t r, const BuildContext* bc, const ExecContext* ec) {
              const int64_t a = axis < 0 ? axis + r : axis;
              if (a < 0 || a > r) {
                const std::string m = "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(r);
                if (bc) bc->fail(m);
                ec->fail(m);
              }
              return a;
            };
            if (in) {
              const int64_t a = resolve(axis, static_cast<int64_t>(in->size()), &ctx, nullptr);
              bool k0 = true, k1 = true;
              int64_t p0 = 1, p1 = 1;
              for (int64_t i = 0; i < static_cast<int64_t>(in->size()); ++i) {
                const int64_t v = (*in)[i];
                if (i < a) { if (v < 0) k0 = false; else p0 *= v; }
                else { if (v < 0) k1 = false; else p1 *= v; }
              }
              shape = std::vector<int64_t>{k0 ? p0 : -1, k1 ? p1 : -1};
            }
            ctx.set_output(0, ctx.input_dtype(0), shape);
            return make_kernel([axis, resolve](ExecContext& ec) {
              const Tensor& x = ec.input(0);
              const int64_t a = resolve(axis, static_cast<int64_t>(x.rank()), nullptr, &ec);
              const int64_t dims[2] = {product(x.dims(), 0, a), product(x.dims(), a)};
              ec.alias_output(0, 0, dims);
            });
          }};
  d.aliases_input0 = true;
  registry.add(d, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(flatten) {
  emitters.add("", "Flatten", exact(emit_flatten));
}
}  // namespace quiver::onnx
