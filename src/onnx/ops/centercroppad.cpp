// CenterCropPad: per listed axis, crops (centered, extra element taken from the end) or zero-pads
// (centered, extra element added at the end) to the target size.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(centercroppad) {
  registry.add({"", "CenterCropPad", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::I64, DType::I32});
                  const DType t = ctx.input_dtype(0);
                  const std::vector<int64_t> axes_attr = ctx.attrs().get_ints("axes");
                  std::optional<std::vector<int64_t>> shape;
                  if (ctx.input(0).shape) shape = std::vector<int64_t>(ctx.input(0).shape->size(), -1);
                  ctx.set_output(0, t, shape);
                  return make_kernel([t, axes_attr](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t r = static_cast<int64_t>(x.rank());
                    const auto target = read_ints(ec.input(1));
                    std::vector<int64_t> axes;
                    if (axes_attr.empty()) for (int64_t i = 0; i < r; ++i) axes.push_back(i);
                    else axes = norm_axes(axes_attr, r, &ec, nullptr);
                    if (target.size() != axes.size())
                      ec.fail("shape has " + std::to_string(target.size()) + " entries for " + std::to_string(axes.size()) + " axes",
                              "shape");
                    std::vector<int64_t> od = x.dims(), shift(r, 0);  // src = out + shift
                    for (size_t i = 0; i < axes.size(); ++i) {
                      const int64_t a = axes[i], d = x.dim(a), s = target[i];
                      if (s < 0) ec.fail("negative target size", "shape");
                      od[a] = s;
                      shift[a] = d >= s ? (d - s) / 2 : -((s - d) / 2);
                    }
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    const auto xs = contiguous_strides(x.dims());
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      if (r == 0) { py[0] = px[0]; return; }
                      const int64_t inner = od[r - 1], nl = x.dim(r - 1);
                      // Output columns [lo, hi) of each row come from the input row.
                      const int64_t lo = std::clamp<int64_t>(-shift[r - 1], 0, inner);
                      const int64_t hi = std::clamp<int64_t>(nl - shift[r - 1], lo, inner);
                      std::vector<int64_t> idx(r, 0);
                      const int64_t rows = y.numel() / inner;
                      for (int64_t row = 0; row < rows; ++row) {
                        T* dst = py + row * inner;
                        int64_t off = 0;
                        bool inside = true;
                        for (int64_t d = 0; d + 1 < r; ++d) {
                          const int64_t s = idx[d] + shift[d];
                          if (s < 0 || s >= x.dim(d)) { inside = false; break; }
                          off += s * xs[d];
                        }
                        std::fill_n(dst, inner, T{});
                        if (inside) copy_n_elems(px + off + lo + shift[r - 1], dst + lo, hi - lo);
                        for (int64_t d = r - 1; d-- > 0;) {
                          if (++idx[d] < od[d]) break;
                          idx[d] = 0;
                        }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
