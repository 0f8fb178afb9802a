// Col2Im: inverse of im2col. Input [N, C * prod(block_shape), L] with L sliding-block positions over
// the padded image; every column entry is added into output [N, C, *image_shape] at
// position * stride - pad_begin + kernel_offset * dilation (entries landing in padding are dropped).
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(col2im) {
  registry.add({"", "Col2Im", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 3);
                  ctx.expect_dtype(0, {DType::F32, DType::F64});
                  ctx.expect_dtype(1, {DType::I64});
                  ctx.expect_dtype(2, {DType::I64});
                  const DType t = ctx.input_dtype(0);
                  const auto dil_a = ctx.attrs().get_ints("dilations");
                  const auto pads_a = ctx.attrs().get_ints("pads");
                  const auto str_a = ctx.attrs().get_ints("strides");
                  ctx.set_output(0, t);
                  return make_kernel([t, dil_a, pads_a, str_a](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const auto img = read_ints(ec.input(1));
                    const auto blk = read_ints(ec.input(2));
                    const size_t D = img.size();
                    if (blk.size() != D || D == 0) ec.fail("image_shape and block_shape must have the same non-zero length");
                    std::vector<int64_t> dil = dil_a.empty() ? std::vector<int64_t>(D, 1) : dil_a;
                    std::vector<int64_t> str = str_a.empty() ? std::vector<int64_t>(D, 1) : str_a;
                    std::vector<int64_t> pads = pads_a.empty() ? std::vector<int64_t>(2 * D, 0) : pads_a;
                    if (dil.size() != D || str.size() != D || pads.size() != 2 * D) ec.fail("dilations/strides/pads have the wrong length");
                    for (size_t d = 0; d < D; ++d)
                      if (dil[d] <= 0 || str[d] <= 0 || blk[d] <= 0 || img[d] < 0)
                        ec.fail("dilations, strides and block_shape must be positive, image_shape non-negative");
                    if (x.rank() != 3) ec.fail("input must be [N, C * prod(block_shape), L]");
                    const int64_t K = product(blk);
                    if (K <= 0 || x.dim(1) % K != 0) ec.fail("input dim 1 is not a multiple of prod(block_shape)");
                    const int64_t N = x.dim(0), C = x.dim(1) / K;
                    std::vector<int64_t> nb(D);
                    for (size_t d = 0; d < D; ++d) {
                      const int64_t eff = dil[d] * (blk[d] - 1) + 1;
                      nb[d] = (img[d] + pads[d] + pads[D + d] - eff) / str[d] + 1;
                      if (nb[d] <= 0) ec.fail("block does not fit the padded image");
                    }
                    if (product(nb) != x.dim(2))
                      ec.fail("input has " + std::to_string(x.dim(2)) + " blocks, expected " + std::to_string(product(nb)));
                    std::vector<int64_t> od{N, C};
                    od.insert(od.end(), img.begin(), img.end());
                    Tensor& y = ec.output(0, t, od);
                    const int64_t L = x.dim(2), P = product(img);
                    const auto is = contiguous_strides(img);
                    auto run = [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      std::fill_n(py, y.numel(), T(0));
                      std::vector<int64_t> kidx(D), lidx(D);
                      for (int64_t k = 0; k < K; ++k) {
                        int64_t rem = k;
                        for (size_t d = D; d-- > 0;) { kidx[d] = rem % blk[d]; rem /= blk[d]; }
                        for (int64_t l = 0; l < L; ++l) {
                          rem = l;
                          for (size_t d = D; d-- > 0;) { lidx[d] = rem % nb[d]; rem /= nb[d]; }
                          int64_t off = 0;
                          bool inside = true;
                          for (size_t d = 0; d < D && inside; ++d) {
                            const int64_t p = lidx[d] * str[d] - pads[d] + kidx[d] * dil[d];
                            if (p < 0 || p >= img[d]) inside = false;
                            off += p * is[d];
                          }
                          if (!inside) continue;
                          for (int64_t n = 0; n < N; ++n)
                            for (int64_t c = 0; c < C; ++c) py[(n * C + c) * P + off] += px[((n * C + c) * K + k) * L + l];
                        }
                      }
                    };
                    if (t == DType::F32) run(TypeTag<float>{});
                    else run(TypeTag<double>{});
                  });
                }});
}
}  // namespace quiver::onnx
