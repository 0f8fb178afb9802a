// Compress: keeps the slices along `axis` (or the flattened elements) whose condition entry is true;
// a condition shorter than the axis counts as false for the rest.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(compress) {
  registry.add({"", "Compress", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::Bool});
                  const bool has_axis = ctx.attrs().has("axis");
                  const int64_t axis = ctx.attrs().get_int("axis", 0);
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t);
                  return make_kernel([t, has_axis, axis](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& c = ec.input(1);
                    if (c.rank() != 1) ec.fail("condition must be 1-D", "condition");
                    const bool* pc = c.data<bool>();
                    int64_t outer, dim, inner;
                    std::vector<int64_t> od;
                    int64_t a = 0;
                    if (has_axis) {
                      a = norm_axis(axis, static_cast<int64_t>(x.rank()), &ec);
                      outer = product(x.dims(), 0, a);
                      dim = x.dim(a);
                      inner = product(x.dims(), a + 1);
                      od = x.dims();
                    } else {
                      outer = 1;
                      dim = x.numel();
                      inner = 1;
                      od = {dim};
                      a = 0;
                    }
                    if (c.numel() > dim) ec.fail("condition is longer than the axis", "condition");
                    std::vector<int64_t> keep;
                    for (int64_t i = 0; i < c.numel(); ++i)
                      if (pc[i]) keep.push_back(i);
                    od[a] = static_cast<int64_t>(keep.size());
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      for (int64_t o = 0; o < outer; ++o)
                        for (int64_t k : keep) {
                          copy_n_elems(px + (o * dim + k) * inner, py, inner);
                          py += inner;
                        }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
