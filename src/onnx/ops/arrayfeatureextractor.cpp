// ArrayFeatureExtractor (ai.onnx.ml): Z = X[..., indices] along the last axis; a 1-D X gives [1, n].
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(arrayfeatureextractor) {
  registry.add({"ai.onnx.ml", "ArrayFeatureExtractor", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::I64});
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t);
                  return make_kernel([t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const std::vector<int64_t> idx = read_ints(ec.input(1));
                    if (x.rank() < 1) ec.fail("X must have rank >= 1", "X");
                    const int64_t last = x.dim(x.rank() - 1), outer = x.numel() / std::max<int64_t>(last, 1);
                    for (int64_t i : idx)
                      if (i < 0 || i >= last) ec.fail("index " + std::to_string(i) + " out of range [0, " + std::to_string(last) + ")", "Y");
                    std::vector<int64_t> od;
                    if (x.rank() == 1) od = {1};
                    else od.assign(x.dims().begin(), x.dims().end() - 1);
                    od.push_back(static_cast<int64_t>(idx.size()));
                    Tensor& z = ec.output(0, t, od);
                    const size_t es = dtype_size(t);
                    for (int64_t o = 0; o < outer; ++o)
                      for (size_t k = 0; k < idx.size(); ++k)
                        copy_elements(t, x.data<uint8_t>() + (o * last + idx[k]) * static_cast<int64_t>(es),
                                      z.data<uint8_t>() + (o * static_cast<int64_t>(idx.size()) + static_cast<int64_t>(k)) * static_cast<int64_t>(es), 1);
                  });
                }});
}
}  // namespace quiver::onnx
