// Det: determinant of square matrices [..., M, M] -> [...], by LU decomposition with partial pivoting
// in double precision.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(det) {
  registry.add({"", "Det", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  std::optional<std::vector<int64_t>> oshape;
                  if (const auto& s = ctx.input(0).shape) {
                    if (s->size() < 2) ctx.fail("input must have rank >= 2, got " + std::to_string(s->size()), ctx.input_name(0));
                    oshape = std::vector<int64_t>(s->begin(), s->end() - 2);
                  }
                  ctx.set_output(0, t, oshape);
                  return make_kernel([t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const size_t r = x.rank();
                    if (r < 2 || x.dim(r - 1) != x.dim(r - 2))
                      ec.fail("input must be [..., M, M], got " + dims_to_string(x.dims()), "X");
                    const int64_t m = x.dim(r - 1);
                    std::vector<int64_t> od(x.dims().begin(), x.dims().end() - 2);
                    Tensor& y = ec.output(0, t, od);
                    const int64_t batch = y.numel();
                    double* a = static_cast<double*>(ec.scratch(static_cast<size_t>(std::max<int64_t>(m * m, 1)) * sizeof(double)));
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      for (int64_t b = 0; b < batch; ++b) {
                        for (int64_t i = 0; i < m * m; ++i) a[i] = static_cast<double>(to_compute(px[b * m * m + i]));
                        double det = 1;
                        for (int64_t c = 0; c < m && det != 0; ++c) {
                          int64_t p = c;
                          for (int64_t i = c + 1; i < m; ++i)
                            if (std::fabs(a[i * m + c]) > std::fabs(a[p * m + c])) p = i;
                          if (a[p * m + c] == 0) { det = 0; break; }
                          if (p != c) {
                            for (int64_t j = 0; j < m; ++j) std::swap(a[p * m + j], a[c * m + j]);
                            det = -det;
                          }
                          const double piv = a[c * m + c];
                          det *= piv;
                          for (int64_t i = c + 1; i < m; ++i) {
                            const double f = a[i * m + c] / piv;
                            if (f == 0) continue;
                            for (int64_t j = c + 1; j < m; ++j) a[i * m + j] -= f * a[c * m + j];
                          }
                        }
                        py[b] = from_compute<T>(static_cast<compute_t<T>>(det));
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
