// ConstantOfShape: a tensor of the given shape filled with the `value` attribute (default float 0).
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

// quiver compile: dims read in the shape pass, filled with the attribute's value.
void emit_constantofshape(Emit& e) {
  const std::string t = e.tout(0);
  if (!e.in(0).shape || e.in(0).shape->size() != 1 || (*e.in(0).shape)[0] < 0) e.refuse("the shape's length is not static");
  const int64_t n = (*e.in(0).shape)[0];
  if (n > 8) e.refuse("rank above 8");
  e.read_values(0);
  e.dims_only(0);
  std::string v = "0";
  if (auto val = e.attrs().get_tensor("value")) {
    switch (val->dtype()) {
      case DType::F32: v = cfloat(val->data<float>()[0]); break;
      case DType::I64: v = cint(val->data<int64_t>()[0]); break;
      case DType::I32: v = std::to_string(val->data<int32_t>()[0]); break;
      case DType::Bool: v = val->data<bool>()[0] ? "true" : "false"; break;
      default: e.refuse("value type");
    }
  }
  e.shape("O0.r = " + std::to_string(n) + ";\nfor (int j = 0; j < O0.r; ++j) { if (x0[j] < 0) fail(\"negative dim\"); O0.d[j] = x0[j]; }\n");
  e.compute("const int64_t n = O0.n();\nfor (int64_t j = 0; j < n; ++j) y0[j] = static_cast<" + t + ">(" + v + ");\n");
}

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
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(constantofshape) {
  emitters.add("", "ConstantOfShape", exact(emit_constantofshape));
}
}  // namespace quiver::onnx
