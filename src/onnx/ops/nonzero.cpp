// NonZero: [rank, nnz] int64 coordinates of the non-zero elements, in row-major order.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(nonzero) {
  registry.add({"", "NonZero", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  if (t == DType::String) ctx.fail("string input is not supported");
                  const int64_t r = ctx.input(0).shape ? std::max<int64_t>(1, static_cast<int64_t>(ctx.input(0).shape->size())) : -1;
                  ctx.set_output(0, DType::I64, std::vector<int64_t>{r, -1});
                  return make_kernel([t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t n = x.numel();
                    const int64_t r = static_cast<int64_t>(x.rank());
                    std::vector<int64_t> pos;
                    visit_dtype(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if constexpr (std::is_same_v<T, std::string>) return;
                      else {
                        const T* p = x.data<T>();
                        for (int64_t i = 0; i < n; ++i) {
                          bool nz;
                          if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) nz = static_cast<float>(p[i]) != 0.f;
                          else nz = p[i] != T(0);
                          if (nz) pos.push_back(i);
                        }
                      }
                    });
                    const int64_t nnz = static_cast<int64_t>(pos.size());
                    // A scalar is treated as 1-D (like numpy.nonzero): [1, nnz] of zeros.
                    Tensor& y = ec.output(0, DType::I64, {r == 0 ? 1 : r, nnz});
                    int64_t* py = y.data<int64_t>();
                    if (r == 0) std::fill_n(py, nnz, 0);
                    const auto strides = contiguous_strides(x.dims());
                    for (int64_t k = 0; k < nnz; ++k) {
                      int64_t rem = pos[static_cast<size_t>(k)];
                      for (int64_t d = 0; d < r; ++d) {
                        py[d * nnz + k] = rem / strides[d];
                        rem %= strides[d];
                      }
                    }
                  });
                }}, Repro::Exact);
}
}  // namespace quiver::onnx
