// Squeeze: removes size-1 dims (the listed `axes`, attribute before opset 13 and input from 13, or
// all of them). Output views the input.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

namespace {
std::vector<int64_t> squeeze_dims(std::span<const int64_t> in, const std::optional<std::vector<int64_t>>& axes,
                                  const ExecContext* ec, const BuildContext* bc) {
  const int64_t r = static_cast<int64_t>(in.size());
  std::vector<bool> drop(r, false);
  if (axes) {
    for (auto a : norm_axes(*axes, r, ec, bc)) {
      if (in[a] != 1 && in[a] != -1) {
        const std::string m = "cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(in[a]);
        if (ec) ec->fail(m);
        if (bc) bc->fail(m);
      }
      drop[a] = true;
    }
  } else {
    for (int64_t i = 0; i < r; ++i) drop[i] = in[i] == 1;
  }
  std::vector<int64_t> out;
  for (int64_t i = 0; i < r; ++i)
    if (!drop[i]) out.push_back(in[i]);
  return out;
}
}  // namespace

// quiver compile: a view of input 0 with the output's dims.
void emit_squeeze(Emit& e) {
  const int r = e.rank_in(0), ro = e.rank_out(0);
  const std::vector<int64_t> axes = e.axes(13, r);
  std::vector<bool> drop(static_cast<size_t>(r), false);
  if (axes.empty()) {
    if (!e.in(0).shape || ro != r - static_cast<int>(std::count(e.in(0).shape->begin(), e.in(0).shape->end(), 1)))
      e.refuse("Squeeze without axes needs the input's static dims");
    for (int i = 0; i < r; ++i) drop[static_cast<size_t>(i)] = (*e.in(0).shape)[static_cast<size_t>(i)] == 1;
  }
  for (int64_t a : axes) drop[static_cast<size_t>(a)] = true;
  std::vector<std::string> d;
  std::string check;
  for (int i = 0; i < r; ++i)
    if (!drop[static_cast<size_t>(i)]) d.push_back("I0.d[" + std::to_string(i) + "]");
    else check += "if (I0.d[" + std::to_string(i) + "] != 1) fail(\"squeezed dim is not 1\");\n";
  e.shape(check);
  e.set_dims(0, d);
  e.view(0);
}

QUIVER_REGISTER_OPS(squeeze) {
  OpDef d{"", "Squeeze", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
            ctx.expect_inputs(1, 2);
            std::optional<std::vector<int64_t>> axes;
            bool dyn_axes = false;
            if (ctx.opset() < 13) {
              if (ctx.attrs().has("axes")) axes = ctx.attrs().get_ints("axes");
            } else if (ctx.has_input(1)) {
              axes = ctx.const_ints(1);
              dyn_axes = !axes;
            }
            std::optional<std::vector<int64_t>> shape;
            const auto& in = ctx.input(0).shape;
            if (in && !dyn_axes && (axes || all_known(in))) shape = squeeze_dims(*in, axes, nullptr, &ctx);
            ctx.set_output(0, ctx.input_dtype(0), shape);
            return make_kernel([axes, dyn_axes](ExecContext& ec) {
              const Tensor& x = ec.input(0);
              if (dyn_axes) ec.alias_output(0, 0, squeeze_dims(x.dims(), read_ints(ec.input(1)), &ec, nullptr));
              else ec.alias_output(0, 0, squeeze_dims(x.dims(), axes, &ec, nullptr));
            });
          }};
  d.aliases_input0 = true;
  registry.add(d, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(squeeze) {
  emitters.add("", "Squeeze", exact(emit_squeeze));
}
}  // namespace quiver::onnx
