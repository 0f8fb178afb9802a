// Cast(to): between all Quiver element types (numeric, bool, F16/BF16, string). Target types Quiver
// does not represent (FLOAT8*, INT4/UINT4, INT2, FLOAT4E2M1, complex) are reported as unsupported.
// Float -> integer: NaN gives 0 and out-of-range values saturate (ONNX leaves both unspecified).
#include "onnx/ops/mathops.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
// quiver compile: element conversion (bool: nonzero is true). CastLike: to input 1's type (dims only).
void emit_cast(Emit& e) {
  const std::string ti = e.tin(0), to = e.tout(0);
  if (e.num_inputs() > 1) e.dims_only(1);
  e.same_dims(0, 0);
  const bool float_to_int = (e.in(0).dtype == DType::F32 || e.in(0).dtype == DType::F64) && e.out(0).dtype != DType::Bool &&
                            e.out(0).dtype != DType::F32 && e.out(0).dtype != DType::F64;
  if (e.reproducible() && float_to_int) {
    // convert_value: NaN gives 0, out-of-range values saturate (the kernel's defined result).
    e.compute("const int64_t n = I0.n();\nfor (int64_t j = 0; j < n; ++j) {\n  const " + ti + " v = x0[j];\n  y0[j] = v != v ? " +
              to + "(0) : v <= static_cast<" + ti + ">(std::numeric_limits<" + to + ">::lowest()) ? std::numeric_limits<" + to +
              ">::lowest() : v >= static_cast<" + ti + ">(std::numeric_limits<" + to + ">::max()) ? std::numeric_limits<" + to +
              ">::max() : static_cast<" + to + ">(v);\n}\n");
    e.bitwise();
    return;
  }
  e.compute("const int64_t n = I0.n();\nfor (int64_t j = 0; j < n; ++j) y0[j] = static_cast<" + to + ">(x0[j]);\n");
  e.bitwise();  // conversions between these types are exact or correctly rounded
}

std::unique_ptr<Kernel> cast_kernel(DType from, DType dst) {
  return make_kernel([from, dst](ExecContext& ec) {
    const Tensor& x = ec.input(0);
    if (x.dtype() != from) ec.fail("input dtype " + dt_str(x.dtype()) + " differs from the declared " + dt_str(from));
    Tensor& y = ec.output(0, dst, x.dims());
    try {
      convert_elements(from, x.raw(), dst, y.raw(), x.numel());
    } catch (const Error& e) {
      ec.fail(e.message());
    }
  });
}

QUIVER_REGISTER_OPS(cast) {
  registry.add({"", "Cast", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const int64_t code = ctx.attrs().req_int("to");
                  const auto to = dtype_from_onnx(static_cast<int32_t>(code));
                  if (!to) ctx.unsupported("Cast to ONNX element type " + std::to_string(code) + " is not supported");
                  const DType from = ctx.input_dtype(0);
                  if (from == DType::Undefined) ctx.unsupported("Cast from an unsupported element type");
                  const DType dst = *to;
                  ctx.set_output(0, dst, ctx.input(0).shape);
                  return cast_kernel(from, dst);
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(cast) {
  emitters.add("", "Cast", emit_cast);
}
}  // namespace quiver::onnx
