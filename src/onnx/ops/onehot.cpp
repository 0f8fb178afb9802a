// OneHot: output rank r+1 with a new axis of size `depth` at `axis`; on/off values from `values`.
// Negative indices count from depth; out-of-range indices give an all-off row.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(onehot) {
  registry.add({"", "OneHot", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 3);
                  const int64_t axis = ctx.attrs().get_int("axis", -1);
                  const DType t = ctx.input_dtype(2);
                  ctx.set_output(0, t);
                  return make_kernel([axis, t](ExecContext& ec) {
                    const Tensor& ind = ec.input(0);
                    const Tensor& dt = ec.input(1);
                    const Tensor& vals = ec.input(2);
                    if (dt.numel() != 1) ec.fail("depth must be a scalar", "depth");
                    if (vals.numel() != 2) ec.fail("values must have 2 elements [off, on]", "values");
                    const int64_t depth = static_cast<int64_t>(read_scalar_f64(dt));
                    if (depth <= 0) ec.fail("depth must be positive", "depth");
                    const int64_t r = static_cast<int64_t>(ind.rank());
                    const int64_t a = norm_axis(axis, r + 1, &ec);
                    std::vector<int64_t> od(ind.dims().begin(), ind.dims().begin() + a);
                    od.push_back(depth);
                    od.insert(od.end(), ind.dims().begin() + a, ind.dims().end());
                    Tensor& y = ec.output(0, t, od);
                    const int64_t outer = product(ind.dims(), 0, a), inner = product(ind.dims(), a);
                    std::vector<int64_t> idx(static_cast<size_t>(ind.numel()));
                    visit_numeric(ind.dtype(), [&](auto tag) {
                      using I = typename decltype(tag)::type;
                      for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(ind.data<I>()[i]);
                    });
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T off = vals.data<T>()[0], on = vals.data<T>()[1];
                      T* py = y.data<T>();
                      std::fill_n(py, y.numel(), off);
                      for (int64_t o = 0; o < outer; ++o)
                        for (int64_t i = 0; i < inner; ++i) {
                          int64_t k = idx[o * inner + i];
                          if (k < 0) k += depth;
                          if (k < 0 || k >= depth) continue;
                          py[(o * depth + k) * inner + i] = on;
                        }
                    });
                  });
                }}, Repro::Exact);
}
}  // namespace quiver::onnx
