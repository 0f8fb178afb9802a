// ScatterElements (and the deprecated Scatter, opset 9-10): out = copy of data; for each element of
// updates, out[..indices[...]..] (along `axis`) is replaced or reduced (add/mul/max/min).
#include "onnx/ops/scatter_reduce.hpp"
namespace quiver::onnx {

namespace {
template <class T, class I>
void scatter_elements(const Tensor& x, const Tensor& ind, const Tensor& upd, Tensor& y, int64_t a, ScatterReduce red,
                      ExecContext& ec) {
  const size_t r = x.rank();
  const auto xs = contiguous_strides(x.dims());
  const auto& id = ind.dims();
  const I* pi = ind.data<I>();
  const T* pu = upd.data<T>();
  T* py = y.data<T>();
  copy_n_elems(x.data<T>(), py, x.numel());
  const int64_t n = ind.numel(), dim = x.dim(a), inner = id[r - 1];
  if (n == 0) return;
  std::vector<int64_t> idx(r, 0);
  int64_t base = 0;
  for (int64_t o = 0; o < n; o += inner) {
    for (int64_t i = 0; i < inner; ++i) {
      int64_t k = pi[o + i];
      if (k < 0) k += dim;
      if (k < 0 || k >= dim)
        ec.fail("index " + std::to_string(static_cast<int64_t>(pi[o + i])) + " out of range for axis of size " + std::to_string(dim),
                "indices");
      const int64_t off = static_cast<size_t>(a) == r - 1 ? base + k : base + i * xs[r - 1] + k * xs[a];
      scatter_apply(py[off], pu[o + i], red);
    }
    for (size_t d = r - 1; d-- > 0;) {
      const int64_t s = static_cast<int64_t>(d) == a ? 0 : xs[d];
      if (++idx[d] < id[d]) { base += s; break; }
      base -= s * (id[d] - 1);
      idx[d] = 0;
    }
  }
}

KernelBuilder builder() {
  return [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(3, 3);
    ctx.expect_dtype(1, {DType::I32, DType::I64});
    const DType t = ctx.input_dtype(0);
    if (ctx.input_dtype(2) != t) ctx.fail("updates must have the data's dtype", ctx.input_name(2));
    const int64_t axis = ctx.attrs().get_int("axis", 0);
    const ScatterReduce red = parse_scatter_reduction(ctx);
    ctx.set_output(0, t, ctx.input(0).shape);
    return make_kernel([axis, t, red](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      const Tensor& ind = ec.input(1);
      const Tensor& upd = ec.input(2);
      const int64_t r = static_cast<int64_t>(x.rank());
      if (r == 0) ec.fail("data must have rank >= 1");
      if (ind.rank() != x.rank()) ec.fail("indices must have the data's rank", "indices");
      if (upd.dims() != ind.dims()) ec.fail("updates must have the indices' shape", "updates");
      const int64_t a = norm_axis(axis, r, &ec);
      for (int64_t d = 0; d < r; ++d)
        if (d != a && ind.dim(d) > x.dim(d))
          ec.fail("indices dims " + dims_to_string(ind.dims()) + " exceed data dims " + dims_to_string(x.dims()), "indices");
      Tensor& y = ec.output(0, t, x.dims());
      visit_dtype(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (ind.dtype() == DType::I64) scatter_elements<T, int64_t>(x, ind, upd, y, a, red, ec);
        else scatter_elements<T, int32_t>(x, ind, upd, y, a, red, ec);
      });
    });
  };
}
}  // namespace

QUIVER_REGISTER_OPS(scatterelements) {
  registry.add({"", "ScatterElements", builder()}, Repro::Exact);
  registry.add({"", "Scatter", builder()});
}
}  // namespace quiver::onnx
