// MaxUnpool: scatters X into a zero tensor at the flat indices I (as produced by MaxPool's Indices
// output, which index the whole N*C*spatial tensor). Output spatial size: output_shape input, or
// (in - 1) * stride + kernel - pad_begin - pad_end.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(maxunpool) {
  registry.add({"", "MaxUnpool", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  ctx.expect_dtype(1, {DType::I64});
                  const auto kernel = ctx.attrs().req_ints("kernel_shape");
                  const auto pads_a = ctx.attrs().get_ints("pads");
                  const auto str_a = ctx.attrs().get_ints("strides");
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t);
                  return make_kernel([t, kernel, pads_a, str_a](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& ind = ec.input(1);
                    const size_t D = kernel.size();
                    if (x.rank() != D + 2) ec.fail("X rank does not match kernel_shape");
                    if (ind.dims() != x.dims()) ec.fail("indices must have X's shape", "I");
                    std::vector<int64_t> pads = pads_a.empty() ? std::vector<int64_t>(2 * D, 0) : pads_a;
                    std::vector<int64_t> str = str_a.empty() ? std::vector<int64_t>(D, 1) : str_a;
                    if (pads.size() != 2 * D || str.size() != D) ec.fail("pads/strides have the wrong length");
                    // Indices refer to the inferred shape; an explicit output_shape keeps their coordinates.
                    std::vector<int64_t> dd{x.dim(0), x.dim(1)};
                    for (size_t d = 0; d < D; ++d) dd.push_back((x.dim(d + 2) - 1) * str[d] + kernel[d] - pads[d] - pads[D + d]);
                    std::vector<int64_t> od = dd;
                    if (ec.has_input(2)) {
                      od = read_ints(ec.input(2));
                      if (od.size() != D + 2) ec.fail("output_shape must have rank entries", "output_shape");
                      for (auto v : od)
                        if (v < 0) ec.fail("negative dimension in output_shape", "output_shape");
                    }
                    for (auto v : dd)
                      if (v < 0) ec.fail("inferred output shape " + dims_to_string(dd) + " is invalid");
                    const bool remap = od != dd;
                    const auto ds = contiguous_strides(dd), os = contiguous_strides(od);
                    const int64_t dtotal = product(dd);
                    Tensor& y = ec.output(0, t, od);
                    const int64_t total = y.numel();
                    const int64_t* pi = ind.data<int64_t>();
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      T* py = y.data<T>();
                      std::fill_n(py, total, T{});
                      const T* px = x.data<T>();
                      for (int64_t i = 0; i < x.numel(); ++i) {
                        if (pi[i] < 0 || pi[i] >= dtotal)
                          ec.fail("index " + std::to_string(pi[i]) + " out of range for " + std::to_string(dtotal) + " elements", "I");
                        int64_t o = pi[i];
                        if (remap) {
                          int64_t rem = pi[i];
                          o = 0;
                          for (size_t d = 0; d < dd.size(); ++d) {
                            const int64_t c = rem / ds[d];
                            rem %= ds[d];
                            if (c >= od[d]) ec.fail("index " + std::to_string(pi[i]) + " does not fit output_shape", "I");
                            o += c * os[d];
                          }
                        }
                        py[o] = px[i];
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
