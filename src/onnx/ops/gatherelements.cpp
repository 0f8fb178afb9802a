// GatherElements: out has the indices' shape; out[..i_axis..] = data[..indices[...]..] along `axis`
// (negative indices count from the end). Data offsets are advanced with an odometer.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
template <class T, class I>
void gather_elements(const Tensor& x, const Tensor& ind, Tensor& y, int64_t a, ExecContext& ec) {
  const size_t r = x.rank();
  const auto xs = contiguous_strides(x.dims());
  const auto& id = ind.dims();
  const T* px = x.data<T>();
  const I* pi = ind.data<I>();
  T* py = y.data<T>();
  const int64_t n = ind.numel(), dim = x.dim(a), inner = id[r - 1];
  std::vector<int64_t> idx(r, 0);
  int64_t base = 0;  // data offset of the current position, without the axis term
  const bool last = static_cast<size_t>(a) == r - 1;
  for (int64_t o = 0; o < n; o += inner) {
    for (int64_t i = 0; i < inner; ++i) {
      int64_t k = pi[o + i];
      if (k < 0) k += dim;
      if (k < 0 || k >= dim)
        ec.fail("index " + std::to_string(static_cast<int64_t>(pi[o + i])) + " out of range for axis of size " + std::to_string(dim),
                "indices");
      py[o + i] = last ? px[base + k] : px[base + i * xs[r - 1] + k * xs[a]];
    }
    for (size_t d = r - 1; d-- > 0;) {
      const int64_t s = static_cast<int64_t>(d) == a ? 0 : xs[d];
      if (++idx[d] < id[d]) { base += s; break; }
      base -= s * (id[d] - 1);
      idx[d] = 0;
    }
  }
}
}  // namespace

QUIVER_REGISTER_OPS(gatherelements) {
  registry.add({"", "GatherElements", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::I32, DType::I64});
                  const int64_t axis = ctx.attrs().get_int("axis", 0);
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t, ctx.input(1).shape);
                  return make_kernel([axis, t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& ind = ec.input(1);
                    const int64_t r = static_cast<int64_t>(x.rank());
                    if (r == 0) ec.fail("data must have rank >= 1");
                    if (ind.rank() != x.rank()) ec.fail("indices must have the data's rank", "indices");
                    const int64_t a = norm_axis(axis, r, &ec);
                    for (int64_t d = 0; d < r; ++d)
                      if (d != a && ind.dim(d) > x.dim(d))
                        ec.fail("indices dims " + dims_to_string(ind.dims()) + " exceed data dims " + dims_to_string(x.dims()),
                                "indices");
                    Tensor& y = ec.output(0, t, ind.dims());
                    if (y.numel() == 0) return;
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if (ind.dtype() == DType::I64) gather_elements<T, int64_t>(x, ind, y, a, ec);
                      else gather_elements<T, int32_t>(x, ind, y, a, ec);
                    });
                  });
                }}, Repro::Exact);
}
}  // namespace quiver::onnx
