// NonZero: [rank, nnz] int64 coordinates of the non-zero elements, in row-major order.
#include "onnx/emit.hpp"
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

namespace {

// quiver compile: the count is data-dependent. The shape code gives the bound (every element
// non-zero), which sizes the workspace; the compute code counts, sets the actual count in the frame
// (EmittedStep::data_dims) and writes the [rank, count] coordinates.
void emit_nonzero(Emit& e) {
  const int r = e.rank_in(0);
  e.tin(0);
  e.data_dims();
  e.shape("O0.r = 2;\nO0.d[0] = " + std::to_string(std::max(r, 1)) + ";\nO0.d[1] = I0.n();\n");
  std::string c = "const int64_t n = I0.n();\nint64_t cnt = 0;\nfor (int64_t i = 0; i < n; ++i) cnt += x0[i] != 0 ? 1 : 0;\n"
                  "O0.d[1] = cnt;\n";
  if (r == 0) {
    c += "if (cnt) y0[0] = 0;\n";  // a scalar is treated as 1-D, as the kernel does
  } else {
    c += "int64_t st[8], acc = 1;\nfor (int a = I0.r - 1; a >= 0; --a) {\n  st[a] = acc;\n  acc *= I0.d[a];\n}\n"
         "for (int64_t i = 0, j = 0; i < n; ++i) {\n  if (!(x0[i] != 0)) continue;\n  int64_t rem = i;\n"
         "  for (int a = 0; a < " + std::to_string(r) + "; ++a) {\n    y0[a * cnt + j] = rem / st[a];\n    rem %= st[a];\n  }\n"
         "  ++j;\n}\n";
  }
  e.compute(c);
  e.comment("data-dependent count, bounded by the element count");
}

}  // namespace

QUIVER_REGISTER_EMITTERS(nonzero) { emitters.add("", "NonZero", exact(emit_nonzero)); }

}  // namespace quiver::onnx
