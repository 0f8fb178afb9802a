// AffineGrid: sampling grid for GridSample from affine matrices theta [N, 2, 3] (2-D) or [N, 3, 4]
// (3-D) and the target size [N, C, (D,) H, W]; output [N, (D,) H, W, 2|3] with (x, y[, z]) last.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
template <class T>
void affine_grid(const Tensor& theta, const std::vector<int64_t>& size, Tensor& y, bool align) {
  const size_t nd = size.size() - 2;  // 2 or 3 spatial dims
  const int64_t N = size[0];
  std::vector<int64_t> sp(size.begin() + 2, size.end());  // (D,) H, W
  auto base = [&](int64_t i, int64_t len) -> double {
    if (len <= 1) return align ? -1.0 : 0.0;  // linspace(-1, 1, 1) = [-1]; pixel centre of one pixel = 0
    return align ? -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(len - 1)
                 : (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(len) - 1.0;
  };
  const T* th = theta.data<T>();
  T* py = y.data<T>();
  const int64_t pts = product(sp);
  const size_t cols = nd + 1;
  for (int64_t n = 0; n < N; ++n) {
    const T* m = th + n * static_cast<int64_t>(nd * cols);
    for (int64_t p = 0; p < pts; ++p) {
      // Spatial index (d, h, w) -> coordinates (x=w, y=h, z=d).
      double coord[3];
      int64_t rem = p;
      for (size_t k = nd; k-- > 0;) {
        const int64_t idx = rem % sp[k];
        rem /= sp[k];
        coord[nd - 1 - k] = base(idx, sp[k]);
      }
      T* out = py + (n * pts + p) * static_cast<int64_t>(nd);
      for (size_t r = 0; r < nd; ++r) {
        double acc = static_cast<double>(m[r * cols + nd]);
        for (size_t c = 0; c < nd; ++c) acc += static_cast<double>(m[r * cols + c]) * coord[c];
        out[r] = static_cast<T>(acc);
      }
    }
  }
}
}  // namespace

QUIVER_REGISTER_OPS(affinegrid) {
  registry.add({"", "AffineGrid", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(0, {DType::F32, DType::F64});
                  ctx.expect_dtype(1, {DType::I64});
                  const bool align = ctx.attrs().get_int("align_corners", 0) != 0;
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t);
                  return make_kernel([t, align](ExecContext& ec) {
                    const Tensor& theta = ec.input(0);
                    const auto size = read_ints(ec.input(1));
                    if (size.size() != 4 && size.size() != 5) ec.fail("size must have 4 or 5 entries", "size");
                    const int64_t nd = static_cast<int64_t>(size.size()) - 2;
                    if (theta.rank() != 3 || theta.dim(0) != size[0] || theta.dim(1) != nd || theta.dim(2) != nd + 1)
                      ec.fail("theta must be [N, " + std::to_string(nd) + ", " + std::to_string(nd + 1) + "]", "theta");
                    std::vector<int64_t> od{size[0]};
                    od.insert(od.end(), size.begin() + 2, size.end());
                    od.push_back(nd);
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    if (t == DType::F32) affine_grid<float>(theta, size, y, align);
                    else affine_grid<double>(theta, size, y, align);
                  });
                }});
}
}  // namespace quiver::onnx
