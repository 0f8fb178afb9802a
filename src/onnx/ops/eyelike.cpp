// EyeLike: 2-D tensor shaped like the input with ones on diagonal k, zeros elsewhere; dtype from the
// `dtype` attribute or the input.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(eyelike) {
  registry.add({"", "EyeLike", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  DType t = ctx.input_dtype(0);
                  if (ctx.attrs().has("dtype")) {
                    auto d = dtype_from_onnx(static_cast<int32_t>(ctx.attrs().get_int("dtype", 1)));
                    if (!d) ctx.unsupported("unsupported dtype code " + std::to_string(ctx.attrs().get_int("dtype", 1)));
                    t = *d;
                  }
                  if (t == DType::String) ctx.fail("string output is not supported");
                  const int64_t k = ctx.attrs().get_int("k", 0);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, k](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() != 2) ec.fail("input must be 2-D");
                    Tensor& y = ec.output(0, t, x.dims());
                    const int64_t n = x.dim(0), m = x.dim(1);
                    visit_dtype(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if constexpr (!std::is_same_v<T, std::string>) {
                        T one, zero{};
                        if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) { one = T(1.f); zero = T(0.f); }
                        else one = T(1);
                        T* py = y.data<T>();
                        std::fill_n(py, y.numel(), zero);
                        for (int64_t i = 0; i < n; ++i) {
                          const int64_t j = i + k;
                          if (j >= 0 && j < m) py[i * m + j] = one;
                        }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
