// STFT(signal [batch, length, 1|2], frame_step, window?, frame_length?): short-time Fourier transform,
// output [batch, frames, bins, 2] with frames = 1 + (length - frame_length) / frame_step and
// bins = frame_length / 2 + 1 when onesided (default) else frame_length.
#include "onnx/ops/signal.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(stft) {
  registry.add({"", "STFT", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 4);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  const bool onesided = ctx.attrs().get_int("onesided", 1) != 0;
                  ctx.set_output(0, t);
                  return make_kernel([t, onesided](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2))
                      ec.fail("signal must be [batch, length, 1 or 2], got " + dims_to_string(x.dims()), "signal");
                    const int64_t step = scalar_int_input(ec, 1, "frame_step");
                    if (step < 1) ec.fail("frame_step must be >= 1", "frame_step");
                    const Tensor* win = ec.has_input(2) ? &ec.input(2) : nullptr;
                    int64_t flen = -1;
                    if (ec.has_input(3)) flen = scalar_int_input(ec, 3, "frame_length");
                    if (win) {
                      if (win->rank() != 1) ec.fail("window must be 1-D", "window");
                      if (flen < 0) flen = win->dim(0);
                      else if (win->dim(0) != flen) ec.fail("window length differs from frame_length", "window");
                    }
                    if (flen < 1) ec.fail("frame_length (or a window) is required and must be >= 1");
                    const int64_t B = x.dim(0), len = x.dim(1), c = x.dim(2);
                    if (len < flen) ec.fail("signal is shorter than one frame", "signal");
                    const int64_t frames = 1 + (len - flen) / step;
                    const int64_t bins = onesided ? flen / 2 + 1 : flen;
                    Tensor& y = ec.output(0, t, {B, frames, bins, 2});
                    std::vector<double> w(static_cast<size_t>(flen), 1.0);
                    if (win) convert_elements(win->dtype(), win->raw(), DType::F64, w.data(), flen);
                    std::vector<double> cs, sn, re(static_cast<size_t>(flen)), im(re.size()), ore(static_cast<size_t>(bins)), oim(ore.size());
                    dft_twiddles(flen, cs, sn);
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      for (int64_t b = 0; b < B; ++b) {
                        for (int64_t f = 0; f < frames; ++f) {
                          for (int64_t n = 0; n < flen; ++n) {
                            const T* p = px + (b * len + f * step + n) * c;
                            re[static_cast<size_t>(n)] = static_cast<double>(to_compute(p[0])) * w[static_cast<size_t>(n)];
                            im[static_cast<size_t>(n)] = c == 2 ? static_cast<double>(to_compute(p[1])) * w[static_cast<size_t>(n)] : 0.0;
                          }
                          dft_line(re.data(), im.data(), flen, flen, bins, -1, 1.0, cs, sn, ore.data(), oim.data());
                          T* q = py + (b * frames + f) * bins * 2;
                          for (int64_t k = 0; k < bins; ++k) {
                            q[2 * k] = from_compute<T>(static_cast<compute_t<T>>(ore[static_cast<size_t>(k)]));
                            q[2 * k + 1] = from_compute<T>(static_cast<compute_t<T>>(oim[static_cast<size_t>(k)]));
                          }
                        }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
