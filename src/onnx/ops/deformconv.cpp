// DeformConv (2-D): convolution whose sampling positions are shifted by learned per-output offsets
// ([N, offset_group * 2 * kH * kW, oH, oW], (dh, dw) pairs) and optionally scaled by a mask
// ([N, offset_group * kH * kW, oH, oW]); samples are bilinear with zero outside the image. Attributes:
// dilations, group, kernel_shape, offset_group, pads, strides. Direct loops in double.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(deformconv) {
  registry.add({"", "DeformConv", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 5);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  if (const auto& s = ctx.input(0).shape; s && s->size() != 4) ctx.unsupported("DeformConv is implemented for 2-D images only");
                  const auto& A = ctx.attrs();
                  const auto dil = A.get_ints("dilations", {1, 1}), str = A.get_ints("strides", {1, 1}), pads = A.get_ints("pads", {0, 0, 0, 0});
                  const int64_t G = A.get_int("group", 1), OG = A.get_int("offset_group", 1);
                  if (dil.size() != 2 || str.size() != 2 || pads.size() != 4 || G < 1 || OG < 1) ctx.fail("bad dilations / strides / pads / group");
                  ctx.set_output(0, t);
                  return make_kernel([=](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& w = ec.input(1);
                    const Tensor& off = ec.input(2);
                    if (x.rank() != 4 || w.rank() != 4 || off.rank() != 4) ec.fail("X, W and offset must be 4-D");
                    const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
                    const int64_t M = w.dim(0), kH = w.dim(2), kW = w.dim(3);
                    if (C % G || M % G || w.dim(1) != C / G || C % OG) ec.fail("channel counts do not match group / offset_group");
                    const int64_t oH = (H + pads[0] + pads[2] - ((kH - 1) * dil[0] + 1)) / str[0] + 1;
                    const int64_t oW = (W + pads[1] + pads[3] - ((kW - 1) * dil[1] + 1)) / str[1] + 1;
                    if (off.dim(0) != N || off.dim(1) != OG * 2 * kH * kW || off.dim(2) != oH || off.dim(3) != oW)
                      ec.fail("offset must be " + dims_to_string(std::vector<int64_t>{N, OG * 2 * kH * kW, oH, oW}) + ", got " + dims_to_string(off.dims()), "offset");
                    const Tensor* bias = ec.has_input(3) ? &ec.input(3) : nullptr;
                    const Tensor* mask = ec.has_input(4) ? &ec.input(4) : nullptr;
                    if (mask && (mask->dim(0) != N || mask->dim(1) != OG * kH * kW || mask->dim(2) != oH || mask->dim(3) != oW))
                      ec.fail("mask shape " + dims_to_string(mask->dims()) + " does not match", "mask");
                    auto load = [](const Tensor* t) {
                      std::vector<double> r;
                      if (t) { r.resize(static_cast<size_t>(t->numel())); if (!r.empty()) convert_elements(t->dtype(), t->raw(), DType::F64, r.data(), t->numel()); }
                      return r;
                    };
                    const auto xv = load(&x), wv = load(&w), ov = load(&off), bv = load(bias), mv = load(mask);
                    if (bias && static_cast<int64_t>(bv.size()) != M) ec.fail("B must have M elements", "B");
                    const int64_t cg = C / G, mg = M / G, cog = C / OG;
                    // Sampled (and masked) input columns: [C, kH, kW] per output position.
                    std::vector<double> col(static_cast<size_t>(C * kH * kW));
                    std::vector<double> y(static_cast<size_t>(N * M * oH * oW));
                    for (int64_t n = 0; n < N; ++n)
                      for (int64_t oh = 0; oh < oH; ++oh)
                        for (int64_t ow = 0; ow < oW; ++ow) {
                          for (int64_t c = 0; c < C; ++c) {
                            const int64_t og = c / cog;
                            const double* img = xv.data() + (n * C + c) * H * W;
                            for (int64_t i = 0; i < kH; ++i)
                              for (int64_t j = 0; j < kW; ++j) {
                                const int64_t kk = i * kW + j;
                                const double dh = ov[static_cast<size_t>(((n * OG * 2 * kH * kW) + og * 2 * kH * kW + 2 * kk) * oH * oW + oh * oW + ow)];
                                const double dw = ov[static_cast<size_t>(((n * OG * 2 * kH * kW) + og * 2 * kH * kW + 2 * kk + 1) * oH * oW + oh * oW + ow)];
                                const double h = static_cast<double>(oh * str[0] - pads[0] + i * dil[0]) + dh;
                                const double wq = static_cast<double>(ow * str[1] - pads[1] + j * dil[1]) + dw;
                                double v = 0;
                                if (h > -1 && h < static_cast<double>(H) && wq > -1 && wq < static_cast<double>(W)) {
                                  const int64_t h0 = static_cast<int64_t>(std::floor(h)), w0 = static_cast<int64_t>(std::floor(wq));
                                  const double lh = h - static_cast<double>(h0), lw = wq - static_cast<double>(w0);
                                  auto px = [&](int64_t r, int64_t s) { return (r >= 0 && r < H && s >= 0 && s < W) ? img[r * W + s] : 0.0; };
                                  v = (1 - lh) * (1 - lw) * px(h0, w0) + (1 - lh) * lw * px(h0, w0 + 1) + lh * (1 - lw) * px(h0 + 1, w0) +
                                      lh * lw * px(h0 + 1, w0 + 1);
                                }
                                if (mask) v *= mv[static_cast<size_t>(((n * OG * kH * kW) + og * kH * kW + kk) * oH * oW + oh * oW + ow)];
                                col[static_cast<size_t>((c * kH + i) * kW + j)] = v;
                              }
                          }
                          for (int64_t m = 0; m < M; ++m) {
                            const int64_t g = m / mg;
                            double s = bias ? bv[static_cast<size_t>(m)] : 0.0;
                            const double* wp = wv.data() + m * cg * kH * kW;
                            const double* cp = col.data() + g * cg * kH * kW;
                            for (int64_t e = 0; e < cg * kH * kW; ++e) s += wp[e] * cp[e];
                            y[static_cast<size_t>(((n * M + m) * oH + oh) * oW + ow)] = s;
                          }
                        }
                    Tensor& out = ec.output(0, t, {N, M, oH, oW});
                    if (!y.empty()) convert_elements(DType::F64, y.data(), t, out.raw(), static_cast<int64_t>(y.size()));
                  });
                }});
}
}  // namespace quiver::onnx
