// DynamicQuantizeLinear(x float) -> (y uint8, y_scale, y_zero_point): range [min(0, min x),
// max(0, max x)] mapped onto [0, 255]; scale = range / 255, zero point = saturate(round(-min / scale)).
#include "onnx/ops/quant.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(dynamicquantizelinear) {
  registry.add({"", "DynamicQuantizeLinear", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  ctx.expect_dtype(0, {DType::F32});
                  ctx.set_output(0, DType::U8, ctx.input(0).shape);
                  if (ctx.num_outputs() > 1) ctx.set_output(1, DType::F32, std::vector<int64_t>{});
                  if (ctx.num_outputs() > 2) ctx.set_output(2, DType::U8, std::vector<int64_t>{});
                  return make_kernel([](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const float* px = x.data<float>();
                    const int64_t n = x.numel();
                    float lo = 0.f, hi = 0.f;
                    for (int64_t i = 0; i < n; ++i) { lo = std::min(lo, px[i]); hi = std::max(hi, px[i]); }
                    const float scale = (hi - lo) / 255.f;
                    const uint8_t zp = scale == 0.f ? uint8_t{0} : saturate_round<uint8_t>(static_cast<double>((0.f - lo) / scale));
                    Tensor& y = ec.output(0, DType::U8, x.dims());
                    uint8_t* py = y.data<uint8_t>();
                    for (int64_t i = 0; i < n; ++i)
                      py[i] = scale == 0.f ? zp : saturate_round<uint8_t>(std::nearbyint(static_cast<double>(px[i] / scale)) + zp);
                    if (ec.num_outputs() > 1 && ec.wants_output(1)) ec.output(1, DType::F32, std::span<const int64_t>()).data<float>()[0] = scale;
                    if (ec.num_outputs() > 2 && ec.wants_output(2)) ec.output(2, DType::U8, std::span<const int64_t>()).data<uint8_t>()[0] = zp;
                  });
                }});
}
}  // namespace quiver::onnx
