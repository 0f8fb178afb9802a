// Shared by ConvInteger and QLinearConv: direct N-D integer convolution (groups, strides, dilations,
// pads / auto_pad) of zero-point-shifted inputs, accumulated in int32.
#pragma once
#include "onnx/ops/quant.hpp"

namespace quiver::onnx {

struct QConvAttrs {
  std::string auto_pad = "NOTSET";
  std::vector<int64_t> dilations, kernel_shape, pads, strides;
  int64_t group = 1;
};

inline QConvAttrs read_qconv_attrs(const BuildContext& ctx) {
  QConvAttrs a;
  const auto& A = ctx.attrs();
  a.auto_pad = A.get_string("auto_pad", "NOTSET");
  a.dilations = A.get_ints("dilations", {});
  a.kernel_shape = A.get_ints("kernel_shape", {});
  a.pads = A.get_ints("pads", {});
  a.strides = A.get_ints("strides", {});
  a.group = A.get_int("group", 1);
  if (a.group < 1) ctx.fail("group must be >= 1");
  return a;
}

// x [N, C, D...], w [M, C/group, K...]; xzp scalar (or empty), wzp scalar or per output channel.
// Returns output dims; acc receives N*M*prod(out spatial) int32 sums.
inline std::vector<int64_t> qconv_run(ExecContext& ec, const QConvAttrs& a, const Tensor& x, const Tensor& w,
                                      const std::vector<double>& xzp, const std::vector<double>& wzp, std::vector<int32_t>& acc) {
  if (x.rank() < 3 || w.rank() != x.rank()) ec.fail("X must be [N, C, D...] and W [M, C/group, K...] of the same rank");
  const size_t nd = x.rank() - 2;
  const int64_t N = x.dim(0), C = x.dim(1), M = w.dim(0), G = a.group;
  if (C % G || M % G || w.dim(1) != C / G) ec.fail("channel counts do not match group " + std::to_string(G));
  std::vector<int64_t> in(nd), k(nd), s(nd, 1), d(nd, 1), pb(nd, 0), pe(nd, 0), out(nd);
  for (size_t i = 0; i < nd; ++i) {
    in[i] = x.dim(2 + i);
    k[i] = w.dim(2 + i);
    if (!a.strides.empty()) s[i] = a.strides[i];
    if (!a.dilations.empty()) d[i] = a.dilations[i];
    if (a.pads.size() == 2 * nd) { pb[i] = a.pads[i]; pe[i] = a.pads[nd + i]; }
    const int64_t ek = (k[i] - 1) * d[i] + 1;
    if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
      out[i] = (in[i] + s[i] - 1) / s[i];
      const int64_t total = std::max<int64_t>(0, (out[i] - 1) * s[i] + ek - in[i]);
      pb[i] = a.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pe[i] = total - pb[i];
    } else {
      if (a.auto_pad == "VALID") pb[i] = pe[i] = 0;
      out[i] = (in[i] + pb[i] + pe[i] - ek) / s[i] + 1;
    }
    if (out[i] < 0) out[i] = 0;
  }
  const std::vector<double> xv = as_doubles(x), wv = as_doubles(w);
  const double xz = xzp.empty() ? 0 : xzp[0];
  if (!wzp.empty() && wzp.size() != 1 && static_cast<int64_t>(wzp.size()) != M) ec.fail("w_zero_point must be a scalar or have M elements");
  const int64_t osz = product(out), isz = product(in), ksz = product(k), cg = C / G, mg = M / G;
  acc.assign(static_cast<size_t>(N * M * osz), 0);
  std::vector<int64_t> oi(nd), ki(nd);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      const int64_t g = m / mg;
      const double wz = wzp.empty() ? 0 : wzp[wzp.size() == 1 ? 0 : static_cast<size_t>(m)];
      for (int64_t o = 0; o < osz; ++o) {
        int64_t rem = o;
        for (size_t i = nd; i-- > 0;) { oi[i] = rem % out[i]; rem /= out[i]; }
        int64_t sum = 0;
        for (int64_t c = 0; c < cg; ++c) {
          const double* xp = xv.data() + (n * C + g * cg + c) * isz;
          const double* wp = wv.data() + (m * cg + c) * ksz;
          for (int64_t kk = 0; kk < ksz; ++kk) {
            int64_t r2 = kk, off = 0, stride = 1;
            bool inside = true;
            for (size_t i = nd; i-- > 0;) { ki[i] = r2 % k[i]; r2 /= k[i]; }
            for (size_t i = nd; i-- > 0;) {
              const int64_t p = oi[i] * s[i] - pb[i] + ki[i] * d[i];
              if (p < 0 || p >= in[i]) { inside = false; break; }
              off += p * stride;
              stride *= in[i];
            }
            // Padding holds the zero point, so padded taps contribute (zp - zp) = 0.
            if (inside) sum += static_cast<int64_t>(xp[off] - xz) * static_cast<int64_t>(wp[kk] - wz);
          }
        }
        acc[static_cast<size_t>((n * M + m) * osz + o)] = static_cast<int32_t>(sum);
      }
    }
  std::vector<int64_t> od{N, M};
  od.insert(od.end(), out.begin(), out.end());
  return od;
}

}  // namespace quiver::onnx
