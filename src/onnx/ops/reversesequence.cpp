// ReverseSequence: for each batch entry b, reverses the first sequence_lens[b] steps along time_axis;
// the remaining steps are copied as they are.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(reversesequence) {
  registry.add({"", "ReverseSequence", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::I64, DType::I32});
                  const int64_t batch_axis = ctx.attrs().get_int("batch_axis", 1);
                  const int64_t time_axis = ctx.attrs().get_int("time_axis", 0);
                  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
                    ctx.fail("batch_axis and time_axis must be 0 and 1 (in either order)");
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, batch_axis, time_axis](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() < 2) ec.fail("input must have rank >= 2");
                    const auto lens = read_ints(ec.input(1));
                    const int64_t nb = x.dim(batch_axis), nt = x.dim(time_axis);
                    if (static_cast<int64_t>(lens.size()) != nb) ec.fail("sequence_lens must have batch size entries", "sequence_lens");
                    Tensor& y = ec.output(0, t, x.dims());
                    const int64_t inner = product(x.dims(), 2);
                    const int64_t sb = batch_axis == 0 ? nt * inner : inner, st = time_axis == 0 ? nb * inner : inner;
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      for (int64_t b = 0; b < nb; ++b) {
                        const int64_t len = lens[b];
                        if (len < 0 || len > nt) ec.fail("sequence length " + std::to_string(len) + " out of range", "sequence_lens");
                        for (int64_t s = 0; s < nt; ++s) {
                          const int64_t src = s < len ? len - 1 - s : s;
                          copy_n_elems(px + b * sb + src * st, py + b * sb + s * st, inner);
                        }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
