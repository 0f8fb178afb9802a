// DepthToSpace (DCR / CRD modes) and SpaceToDepth: 6-D reshape + transpose of NCHW data, done as one
// strided copy (contiguous runs where the layout allows).
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
void run_permuted(ExecContext& ec, DType t, const std::vector<int64_t>& view_dims, const std::vector<int64_t>& perm,
                  const std::vector<int64_t>& out_dims) {
  const Tensor& x = ec.input(0);
  const auto vs = contiguous_strides(view_dims);
  std::vector<int64_t> d(perm.size()), s(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) { d[i] = view_dims[perm[i]]; s[i] = vs[perm[i]]; }
  Tensor& y = ec.output(0, t, out_dims);
  if (y.numel() == 0) return;
  visit_width(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    strided_copy(x.data<T>(), y.data<T>(), d, s);
  });
}
}  // namespace

QUIVER_REGISTER_OPS(depthtospace) {
  registry.add({"", "DepthToSpace", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const int64_t b = ctx.attrs().req_int("blocksize");
                  if (b <= 0) ctx.fail("blocksize must be positive");
                  const std::string mode = ctx.attrs().get_string("mode", "DCR");
                  if (mode != "DCR" && mode != "CRD") ctx.fail("unknown mode '" + mode + "'");
                  const bool crd = mode == "CRD";
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t, std::vector<int64_t>{-1, -1, -1, -1});
                  return make_kernel([b, crd, t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() != 4) ec.fail("input must be 4-D (NCHW)");
                    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
                    if (c % (b * b) != 0) ec.fail("channels " + std::to_string(c) + " not divisible by blocksize^2");
                    const int64_t co = c / (b * b);
                    const std::vector<int64_t> out{n, co, h * b, w * b};
                    if (crd) run_permuted(ec, t, {n, co, b, b, h, w}, {0, 1, 4, 2, 5, 3}, out);
                    else run_permuted(ec, t, {n, b, b, co, h, w}, {0, 3, 4, 1, 5, 2}, out);
                  });
                }});
  registry.add({"", "SpaceToDepth", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const int64_t b = ctx.attrs().req_int("blocksize");
                  if (b <= 0) ctx.fail("blocksize must be positive");
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t, std::vector<int64_t>{-1, -1, -1, -1});
                  return make_kernel([b, t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() != 4) ec.fail("input must be 4-D (NCHW)");
                    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
                    if (h % b != 0 || w % b != 0) ec.fail("spatial dims not divisible by blocksize");
                    run_permuted(ec, t, {n, c, h / b, b, w / b, b}, {0, 3, 5, 1, 2, 4}, {n, c * b * b, h / b, w / b});
                  });
                }});
}
}  // namespace quiver::onnx
