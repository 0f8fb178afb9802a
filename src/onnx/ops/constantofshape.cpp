// ConstantOfShape: a tensor of the given shape filled with the `value` attribute (default float 0).
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(constantofshape) {
  registry.add({"", "ConstantOfShape", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  ctx.expect_dtype(0, {DType::I64});
                  Tensor value = Tensor::scalar<float>(0.f);
                  if (auto v = ctx.attrs().get_tensor("value")) {
                    if (v->numel() != 1) ctx.fail("attribute 'value' must have exactly one element");
                    value = std::move(*v);
                  }
                  std::optional<std::vector<int64_t>> shape;
                  if (auto s = ctx.const_ints(0)) shape = *s;
                  else if (ctx.input(0).shape && ctx.input(0).shape->size() == 1 && (*ctx.input(0).shape)[0] >= 0)
                    shape = std::vector<int64_t>(static_cast<size_t>((*ctx.input(0).shape)[0]), -1);
                  const DType t = value.dtype();
                  ctx.set_output(0, t, shape);
                  return make_kernel([value = std::move(value), t](ExecContext& ec) {
                    const Tensor& s = ec.input(0);
                    if (s.rank() > 1) ec.fail("shape input must be 1-D", "");
                    std::vector<int64_t> dims = read_ints(s);
                    for (auto d : dims)
                      if (d < 0) ec.fail("negative dimension in shape " + dims_to_string(dims));
                    Tensor& y = ec.output(0, t, dims);
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      std::fill_n(y.data<T>(), y.numel(), value.data<T>()[0]);
                    });
                  });
                }});
}
}  // namespace quiver::onnx
