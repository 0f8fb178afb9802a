// MeanVarianceNormalization: (X - mean) / (std + 1e-9) with mean/std over `axes` (default [0, 2, 3]).
#include "onnx/ops/norm_common.hpp"

namespace quiver::onnx {

QUIVER_REGISTER_OPS(meanvariancenormalization) {
  registry.add({"", "MeanVarianceNormalization", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  if (!is_float_family(t)) ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
                  const std::vector<int64_t> axes = ctx.attrs().get_ints("axes", {0, 2, 3});
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([=](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t r = static_cast<int64_t>(x.rank());
                    if (r > 16) ec.fail("rank too large");
                    std::vector<int64_t> rd(x.dims());
                    for (int64_t a : axes) rd[norm_axis(a, r, &ec)] = 1;
                    int64_t st[16];
                    broadcast_strides(rd, x.dims(), st);
                    const int64_t nk = product(rd), n = x.numel();
                    const double cnt = nk ? static_cast<double>(n) / static_cast<double>(nk) : 1.0;
                    std::vector<double> s(static_cast<size_t>(nk), 0.0), s2(static_cast<size_t>(nk), 0.0);
                    Tensor& y = ec.output(0, t, x.dims());
                    visit_float_family(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* xp = x.data<T>();
                      T* yp = y.data<T>();
                      auto walk = [&](auto f) {
                        std::vector<int64_t> idx(static_cast<size_t>(r), 0);
                        int64_t off = 0;
                        for (int64_t i = 0; i < n; ++i) {
                          f(i, off);
                          for (int64_t d = r; d-- > 0;) {
                            if (++idx[d] < x.dim(d)) { off += st[d]; break; }
                            off -= st[d] * (x.dim(d) - 1);
                            idx[d] = 0;
                          }
                        }
                      };
                      walk([&](int64_t i, int64_t k) {
                        const double v = to_double(xp[i]);
                        s[k] += v;
                        s2[k] += v * v;
                      });
                      for (int64_t k = 0; k < nk; ++k) {
                        s[k] /= cnt;
                        s2[k] = std::sqrt(std::max(0.0, s2[k] / cnt - s[k] * s[k])) + 1e-9;
                      }
                      walk([&](int64_t i, int64_t k) { yp[i] = static_cast<T>(static_cast<float>((to_double(xp[i]) - s[k]) / s2[k])); });
                    });
                  });
                }});
}

}  // namespace quiver::onnx
