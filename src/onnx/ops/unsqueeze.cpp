// Unsqueeze: inserts size-1 dims at `axes` (attribute before opset 13, input from 13; positions in
// the output rank, negative allowed). Output views the input.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

namespace {
std::vector<int64_t> unsqueeze_dims(std::span<const int64_t> in, const std::vector<int64_t>& axes, const ExecContext* ec,
                                    const BuildContext* bc) {
  const int64_t r = static_cast<int64_t>(in.size() + axes.size());
  const auto ax = norm_axes(axes, r, ec, bc);
  std::vector<int64_t> out(r, 0);
  std::vector<bool> ins(r, false);
  for (auto a : ax) ins[a] = true;
  size_t j = 0;
  for (int64_t i = 0; i < r; ++i) out[i] = ins[i] ? 1 : in[j++];
  return out;
}
}  // namespace

// quiver compile: a view of input 0 with the output's dims.
void emit_unsqueeze(Emit& e) {
  const int r = e.rank_in(0), ro = e.rank_out(0);
  if (e.node().opset() >= 13 && !e.has_input(1)) e.refuse("Unsqueeze without axes");
  std::vector<bool> ins(static_cast<size_t>(ro), false);
  for (int64_t a : e.axes(13, ro)) ins[static_cast<size_t>(a)] = true;
  std::vector<std::string> d;
  int k = 0;
  for (int i = 0; i < ro; ++i) d.push_back(ins[static_cast<size_t>(i)] ? std::string("1") : "I0.d[" + std::to_string(k++) + "]");
  if (k != r) e.refuse("axes do not match the ranks");
  e.set_dims(0, d);
  e.view(0);
}

QUIVER_REGISTER_OPS(unsqueeze) {
  OpDef d{"", "Unsqueeze", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
            std::optional<std::vector<int64_t>> axes;
            if (ctx.opset() < 13) {
              ctx.expect_inputs(1, 1);
              axes = ctx.attrs().req_ints("axes");
            } else {
              ctx.expect_inputs(2, 2);
              axes = ctx.const_ints(1);
            }
            std::optional<std::vector<int64_t>> shape;
            const auto& in = ctx.input(0).shape;
            if (in && axes) shape = unsqueeze_dims(*in, *axes, nullptr, &ctx);
            ctx.set_output(0, ctx.input_dtype(0), shape);
            if (axes)
              return make_kernel([axes = *axes](ExecContext& ec) {
                ec.alias_output(0, 0, unsqueeze_dims(ec.input(0).dims(), axes, &ec, nullptr));
              });
            return make_kernel([](ExecContext& ec) {
              ec.alias_output(0, 0, unsqueeze_dims(ec.input(0).dims(), read_ints(ec.input(1)), &ec, nullptr));
            });
          }};
  d.aliases_input0 = true;
  registry.add(d, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(unsqueeze) {
  emitters.add("", "Unsqueeze", exact(emit_unsqueeze));
}
}  // namespace quiver::onnx
