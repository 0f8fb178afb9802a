// Shared by the signal-processing operators (DFT, STFT, HannWindow, HammingWindow, BlackmanWindow):
// a direct (table-driven) discrete Fourier transform of one strided line and the window builder.
#pragma once
#include <cmath>
#include <numbers>

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {

// Twiddle table for length L: cos/sin(2*pi*j/L), j < L.
inline void dft_twiddles(int64_t L, std::vector<double>& c, std::vector<double>& s) {
  c.resize(static_cast<size_t>(L));
  s.resize(static_cast<size_t>(L));
  for (int64_t j = 0; j < L; ++j) {
    const double a = 2.0 * std::numbers::pi * static_cast<double>(j) / static_cast<double>(L);
    c[static_cast<size_t>(j)] = std::cos(a);
    s[static_cast<size_t>(j)] = std::sin(a);
  }
}

// X[k] = scale * sum_{n < min(N, L)} x[n] * exp(sign * 2*pi*i*k*n / L) for k < bins, with x given as
// separate real / imaginary arrays (im may be null for a real signal). sign = -1 forward, +1 inverse.
inline void dft_line(const double* re, const double* im, int64_t N, int64_t L, int64_t bins, int sign, double scale,
                     const std::vector<double>& c, const std::vector<double>& s, double* out_re, double* out_im) {
  const int64_t n_used = std::min(N, L);
  for (int64_t k = 0; k < bins; ++k) {
    double ar = 0, ai = 0;
    int64_t j = 0;  // (k * n) mod L, advanced incrementally
    for (int64_t n = 0; n < n_used; ++n) {
      const double cr = c[static_cast<size_t>(j)], ci = sign * s[static_cast<size_t>(j)];
      const double xr = re[n], xi = im ? im[n] : 0.0;
      ar += xr * cr - xi * ci;
      ai += xr * ci + xi * cr;
      j += k;
      j %= L;
    }
    out_re[k] = ar * scale;
    out_im[k] = ai * scale;
  }
}

// Reads a scalar integer input (int32/int64) at run time.
inline int64_t scalar_int_input(ExecContext& ec, size_t i, const char* what) {
  const Tensor& t = ec.input(i);
  if (t.numel() != 1) ec.fail(std::string(what) + " must be a scalar, got shape " + dims_to_string(t.dims()), what);
  return read_ints(t)[0];
}

// HannWindow / HammingWindow / BlackmanWindow: w[n] = a0 - a1 cos(2 pi n / M) + a2 cos(4 pi n / M),
// M = size (periodic, default) or size - 1 (symmetric); output_datatype (default float).
inline KernelBuilder window_builder(double a0, double a1, double a2) {
  return [a0, a1, a2](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(1, 1);
    ctx.expect_dtype(0, {DType::I32, DType::I64});
    const int64_t code = ctx.attrs().get_int("output_datatype", 1);
    const auto dt = dtype_from_onnx(static_cast<int32_t>(code));
    if (!dt || *dt == DType::String || *dt == DType::Bool)
      ctx.fail("unsupported output_datatype " + std::to_string(code), "", ErrorCode::Unsupported);
    const DType t = *dt;
    const bool periodic = ctx.attrs().get_int("periodic", 1) != 0;
    ctx.set_output(0, t, std::vector<int64_t>{-1});
    return make_kernel([a0, a1, a2, t, periodic](ExecContext& ec) {
      const int64_t size = scalar_int_input(ec, 0, "size");
      if (size < 0) ec.fail("size must be >= 0, got " + std::to_string(size), "size");
      Tensor& y = ec.output(0, t, {size});
      const double M = static_cast<double>(periodic ? size : size - 1);
      std::vector<double> w(static_cast<size_t>(size));
      for (int64_t n = 0; n < size; ++n) {
        const double a = M > 0 ? 2.0 * std::numbers::pi * static_cast<double>(n) / M : 0.0;
        w[static_cast<size_t>(n)] = a0 - a1 * std::cos(a) + a2 * std::cos(2 * a);
      }
      convert_elements(DType::F64, w.data(), t, y.raw(), size);
    });
  };
}

}  // namespace quiver::onnx
