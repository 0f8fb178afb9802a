// RoiAlign: per ROI (x1, y1, x2, y2 scaled by spatial_scale, shifted by -0.5 for half_pixel) and
// channel, each output bin averages (mode avg) or maxes (mode max: max of the four weighted corner
// terms, as the reference does) a roi_bin_grid of bilinear samples. Sample positions and weights
// are computed once per ROI and shared by all channels.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
struct Pre { int64_t p[4]; double w[4]; };

template <class T>
void roi_align(const Tensor& x, const Tensor& rois, const std::vector<int64_t>& bidx, Tensor& y, int64_t oh, int64_t ow,
               int64_t sampling, double scale, bool half_pixel, bool max_mode) {
  const int64_t C = x.dim(1), H = x.dim(2), W = x.dim(3), R = rois.dim(0);
  const T* px = x.data<T>();
  const T* pr = rois.data<T>();
  T* py = y.data<T>();
  std::vector<Pre> pre;
  for (int64_t n = 0; n < R; ++n) {
    const double off = half_pixel ? 0.5 : 0.0;
    const double sw = static_cast<double>(pr[n * 4 + 0]) * scale - off, sh = static_cast<double>(pr[n * 4 + 1]) * scale - off;
    const double ew = static_cast<double>(pr[n * 4 + 2]) * scale - off, eh = static_cast<double>(pr[n * 4 + 3]) * scale - off;
    double rw = ew - sw, rh = eh - sh;
    if (!half_pixel) { rw = std::max(rw, 1.0); rh = std::max(rh, 1.0); }
    const double bh = rh / static_cast<double>(oh), bw = rw / static_cast<double>(ow);
    const int64_t gh = sampling > 0 ? sampling : static_cast<int64_t>(std::ceil(rh / static_cast<double>(oh)));
    const int64_t gw = sampling > 0 ? sampling : static_cast<int64_t>(std::ceil(rw / static_cast<double>(ow)));
    const int64_t count = std::max<int64_t>(gh * gw, 1);
    pre.assign(static_cast<size_t>(std::max<int64_t>(oh * ow * gh * gw, 0)), Pre{});
    size_t k = 0;
    for (int64_t ph = 0; ph < oh; ++ph)
      for (int64_t pw = 0; pw < ow; ++pw)
        for (int64_t iy = 0; iy < gh; ++iy) {
          const double yy = sh + static_cast<double>(ph) * bh + (static_cast<double>(iy) + 0.5) * bh / static_cast<double>(gh);
          for (int64_t ix = 0; ix < gw; ++ix, ++k) {
            const double xx = sw + static_cast<double>(pw) * bw + (static_cast<double>(ix) + 0.5) * bw / static_cast<double>(gw);
            Pre& pc = pre[k];
            if (yy < -1.0 || yy > static_cast<double>(H) || xx < -1.0 || xx > static_cast<double>(W)) { pc = Pre{}; continue; }
            double yv = std::max(yy, 0.0), xv = std::max(xx, 0.0);
            int64_t yl = static_cast<int64_t>(yv), xl = static_cast<int64_t>(xv), yh, xh;
            if (yl >= H - 1) { yh = yl = H - 1; yv = static_cast<double>(yl); } else yh = yl + 1;
            if (xl >= W - 1) { xh = xl = W - 1; xv = static_cast<double>(xl); } else xh = xl + 1;
            const double ly = yv - static_cast<double>(yl), lx = xv - static_cast<double>(xl), hy = 1 - ly, hx = 1 - lx;
            pc.p[0] = yl * W + xl; pc.p[1] = yl * W + xh; pc.p[2] = yh * W + xl; pc.p[3] = yh * W + xh;
            pc.w[0] = hy * hx; pc.w[1] = hy * lx; pc.w[2] = ly * hx; pc.w[3] = ly * lx;
          }
        }
    for (int64_t c = 0; c < C; ++c) {
      const T* xc = px + (bidx[n] * C + c) * H * W;
      T* yc = py + (n * C + c) * oh * ow;
      size_t q = 0;
      for (int64_t b = 0; b < oh * ow; ++b) {
        double v = 0;
        bool first = true;
        for (int64_t s = 0; s < gh * gw; ++s, ++q) {
          const Pre& pc = pre[q];
          if (max_mode) {
            double m = pc.w[0] * static_cast<double>(xc[pc.p[0]]);
            for (int j = 1; j < 4; ++j) m = std::max(m, pc.w[j] * static_cast<double>(xc[pc.p[j]]));
            v = first ? m : std::max(v, m);
            first = false;
          } else {
            for (int j = 0; j < 4; ++j) v += pc.w[j] * static_cast<double>(xc[pc.p[j]]);
          }
        }
        yc[b] = static_cast<T>(max_mode ? v : v / static_cast<double>(count));
      }
    }
  }
}
}  // namespace

QUIVER_REGISTER_OPS(roialign) {
  registry.add({"", "RoiAlign", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 3);
                  ctx.expect_dtype(0, {DType::F32, DType::F64});
                  if (ctx.input_dtype(1) != ctx.input_dtype(0)) ctx.fail("rois must have X's dtype", ctx.input_name(1));
                  ctx.expect_dtype(2, {DType::I64, DType::I32});
                  const auto& a = ctx.attrs();
                  const std::string ctm = a.get_string("coordinate_transformation_mode", ctx.opset() >= 16 ? "half_pixel" : "output_half_pixel");
                  if (ctm != "half_pixel" && ctm != "output_half_pixel") ctx.fail("unknown coordinate_transformation_mode '" + ctm + "'");
                  const std::string mode = a.get_string("mode", "avg");
                  if (mode != "avg" && mode != "max") ctx.fail("unknown mode '" + mode + "'");
                  const int64_t oh = a.get_int("output_height", 1), ow = a.get_int("output_width", 1);
                  const int64_t sampling = a.get_int("sampling_ratio", 0);
                  const double scale = a.get_float("spatial_scale", 1.f);
                  if (oh <= 0 || ow <= 0) ctx.fail("output_height/output_width must be positive");
                  const DType t = ctx.input_dtype(0);
                  const bool half = ctm == "half_pixel", mx = mode == "max";
                  ctx.set_output(0, t, std::vector<int64_t>{-1, -1, oh, ow});
                  return make_kernel([t, oh, ow, sampling, scale, half, mx](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& rois = ec.input(1);
                    if (x.rank() != 4) ec.fail("X must be [N, C, H, W]");
                    if (rois.rank() != 2 || rois.dim(1) != 4) ec.fail("rois must be [num_rois, 4]", "rois");
                    const auto bidx = read_ints(ec.input(2));
                    if (static_cast<int64_t>(bidx.size()) != rois.dim(0)) ec.fail("batch_indices must have num_rois entries", "batch_indices");
                    for (auto b : bidx)
                      if (b < 0 || b >= x.dim(0)) ec.fail("batch index " + std::to_string(b) + " out of range", "batch_indices");
                    Tensor& y = ec.output(0, t, {rois.dim(0), x.dim(1), oh, ow});
                    if (y.numel() == 0) return;
                    if (t == DType::F32) roi_align<float>(x, rois, bidx, y, oh, ow, sampling, scale, half, mx);
                    else roi_align<double>(x, rois, bidx, y, oh, ow, sampling, scale, half, mx);
                  });
                }});
}
}  // namespace quiver::onnx
