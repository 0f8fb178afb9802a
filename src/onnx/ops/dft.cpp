// DFT: discrete Fourier transform along one axis of a real ([..., 1]) or complex ([..., 2]) signal.
// Opset 17-19: `axis` attribute (default 1), dft_length input 1. Opset 20+: axis is input 2 (default
// -2). Negative axes count from the back of the full input (including the trailing real/imag dim).
// inverse=1 scales by 1/length. onesided=1 forward: only bins 0..L/2. onesided=1 inverse (irfft): the
// input holds bins 0..m-1 of a Hermitian spectrum, L = dft_length or 2*(m-1), output is real ([..., 1]).
// Direct O(N * L) evaluation in double with a twiddle table.
#include "onnx/ops/signal.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(dft) {
  registry.add({"", "DFT", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 3);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  const bool axis_input = ctx.opset() >= 20;
                  const int64_t axis_attr = ctx.attrs().get_int("axis", 1);
                  const bool inverse = ctx.attrs().get_int("inverse", 0) != 0;
                  const bool onesided = ctx.attrs().get_int("onesided", 0) != 0;
                  ctx.set_output(0, t);
                  return make_kernel([t, axis_input, axis_attr, inverse, onesided](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t r = static_cast<int64_t>(x.rank());
                    if (r < 2 || (x.dim(r - 1) != 1 && x.dim(r - 1) != 2))
                      ec.fail("input must be [..., 1] (real) or [..., 2] (complex), got " + dims_to_string(x.dims()), "input");
                    int64_t axis = axis_input ? -2 : axis_attr;
                    if (axis_input && ec.has_input(2)) axis = scalar_int_input(ec, 2, "axis");
                    const int64_t a = axis < 0 ? axis + r : axis;
                    if (a < 0 || a > r - 2) ec.fail("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(r));
                    int64_t length = -1;
                    if (ec.has_input(1)) {
                      length = scalar_int_input(ec, 1, "dft_length");
                      if (length < 1) ec.fail("dft_length must be >= 1, got " + std::to_string(length), "dft_length");
                    }
                    const int64_t N = x.dim(static_cast<size_t>(a)), c = x.dim(static_cast<size_t>(r - 1));
                    const bool irfft = inverse && onesided;
                    int64_t L, bins, oc;
                    if (irfft) {
                      L = length > 0 ? length : 2 * (N - 1);
                      if (L < 1) ec.fail("cannot infer the inverse length from " + std::to_string(N) + " one-sided bins");
                      bins = L;
                      oc = 1;
                    } else {
                      L = length > 0 ? length : N;
                      bins = onesided ? L / 2 + 1 : L;
                      oc = 2;
                    }
                    std::vector<int64_t> od = x.dims();
                    od[static_cast<size_t>(a)] = bins;
                    od[static_cast<size_t>(r - 1)] = oc;
                    Tensor& y = ec.output(0, t, od);
                    const int64_t outer = product(x.dims(), 0, static_cast<size_t>(a));
                    const int64_t inner = product(x.dims(), static_cast<size_t>(a) + 1, static_cast<size_t>(r - 1));
                    std::vector<double> cs, sn;
                    dft_twiddles(L, cs, sn);
                    const int64_t in_len = irfft ? L : N;
                    std::vector<double> re(static_cast<size_t>(std::max<int64_t>(in_len, 1))), im(re.size()),
                        ore(static_cast<size_t>(bins)), oim(static_cast<size_t>(bins));
                    const int sign = inverse ? 1 : -1;
                    const double scale = inverse ? 1.0 / static_cast<double>(L) : 1.0;
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      auto val = [&](int64_t o, int64_t n, int64_t i, int64_t comp) {
                        return static_cast<double>(to_compute(px[((o * N + n) * inner + i) * c + comp]));
                      };
                      for (int64_t o = 0; o < outer; ++o) {
                        for (int64_t i = 0; i < inner; ++i) {
                          if (irfft) {
                            // Rebuild the full Hermitian spectrum from its first N bins.
                            for (int64_t k = 0; k < L; ++k) {
                              const int64_t src = k < N ? k : L - k;
                              const bool conj = k >= N;
                              if (src < N && src >= 0) {
                                re[static_cast<size_t>(k)] = val(o, src, i, 0);
                                const double v = c == 2 ? val(o, src, i, 1) : 0.0;
                                im[static_cast<size_t>(k)] = conj ? -v : v;
                              } else {
                                re[static_cast<size_t>(k)] = im[static_cast<size_t>(k)] = 0;
                              }
                            }
                          } else {
                            for (int64_t n = 0; n < N; ++n) {
                              re[static_cast<size_t>(n)] = val(o, n, i, 0);
                              im[static_cast<size_t>(n)] = c == 2 ? val(o, n, i, 1) : 0.0;
                            }
                          }
                          dft_line(re.data(), im.data(), in_len, L, bins, sign, scale, cs, sn, ore.data(), oim.data());
                          for (int64_t k = 0; k < bins; ++k) {
                            T* q = py + ((o * bins + k) * inner + i) * oc;
                            q[0] = from_compute<T>(static_cast<compute_t<T>>(ore[static_cast<size_t>(k)]));
                            if (oc == 2) q[1] = from_compute<T>(static_cast<compute_t<T>>(oim[static_cast<size_t>(k)]));
                          }
                        }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
