// MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz):
// [dft_length / 2 + 1, num_mel_bins] triangular filters on the mel scale (mel = 2595 log10(1 + f/700)),
// num_mel_bins + 2 equally spaced mel points mapped to FFT bins floor((dft_length + 1) f / sample_rate).
// The edge frequencies are converted to mel in float32 like the reference; the rest in double.
#include "onnx/ops/signal.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(melweightmatrix) {
  registry.add({"", "MelWeightMatrix", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(5, 5);
                  const int64_t code = ctx.attrs().get_int("output_datatype", 1);
                  const auto dt = dtype_from_onnx(static_cast<int32_t>(code));
                  if (!dt || *dt == DType::String) ctx.fail("unsupported output_datatype " + std::to_string(code), "", ErrorCode::Unsupported);
                  const DType t = *dt;
                  ctx.set_output(0, t);
                  return make_kernel([t](ExecContext& ec) {
                    const int64_t mel = scalar_int_input(ec, 0, "num_mel_bins");
                    const int64_t dft = scalar_int_input(ec, 1, "dft_length");
                    const int64_t rate = scalar_int_input(ec, 2, "sample_rate");
                    if (mel < 1 || dft < 1 || rate < 1) ec.fail("num_mel_bins, dft_length and sample_rate must be >= 1");
                    float lo = 0, hi = 0;
                    for (size_t i : {3, 4}) {
                      const Tensor& e = ec.input(i);
                      if (e.numel() != 1) ec.fail("edge frequencies must be scalars");
                      convert_elements(e.dtype(), e.raw(), DType::F32, i == 3 ? &lo : &hi, 1);
                    }
                    const float lo_mel = 2595.f * std::log10(1.f + lo / 700.f);
                    const float hi_mel = 2595.f * std::log10(1.f + hi / 700.f);
                    const float step = (hi_mel - lo_mel) / static_cast<float>(mel + 2);
                    std::vector<int64_t> bin(static_cast<size_t>(mel + 2));
                    for (int64_t i = 0; i < mel + 2; ++i) {
                      const double m = static_cast<double>(i) * static_cast<double>(step) + static_cast<double>(lo_mel);
                      const double f = 700.0 * (std::pow(10.0, m / 2595.0) - 1.0);
                      bin[static_cast<size_t>(i)] = static_cast<int64_t>(std::floor(static_cast<double>(dft + 1) * f / static_cast<double>(rate)));
                    }
                    const int64_t nspec = dft / 2 + 1;
                    std::vector<double> w(static_cast<size_t>(nspec * mel), 0.0);
                    auto at = [&](int64_t j, int64_t i) -> double& {
                      if (j < 0 || j >= nspec) ec.fail("mel filter edge falls outside the spectrogram bins");
                      return w[static_cast<size_t>(j * mel + i)];
                    };
                    for (int64_t i = 0; i < mel; ++i) {
                      const int64_t l = bin[static_cast<size_t>(i)], c = bin[static_cast<size_t>(i + 1)], h = bin[static_cast<size_t>(i + 2)];
                      if (c == l) at(c, i) = 1;
                      else
                        for (int64_t j = l; j <= c; ++j) at(j, i) = static_cast<double>(j - l) / static_cast<double>(c - l);
                      if (h > c)
                        for (int64_t j = c; j < h; ++j) at(j, i) = static_cast<double>(h - j) / static_cast<double>(h - c);
                    }
                    Tensor& y = ec.output(0, t, {nspec, mel});
                    convert_elements(DType::F64, w.data(), t, y.raw(), nspec * mel);
                  });
                }});
}
}  // namespace quiver::onnx
