// Constant: the value becomes a load-time constant; no step runs per call.
#include "onnx/ops/common.hpp"
namespace quiver::onnx {
QUIVER_REGISTER_OPS(constant) {
  registry.add({"", "Constant", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const auto& a = ctx.attrs();
                  if (auto t = a.get_tensor("value")) {
                    ctx.set_output_constant(0, std::move(*t));
                  } else if (a.has("value_float")) {
                    ctx.set_output_constant(0, Tensor::scalar<float>(a.get_float("value_float", 0)));
                  } else if (a.has("value_floats")) {
                    auto v = a.get_floats("value_floats");
                    ctx.set_output_constant(0, Tensor::from_vector(v, {static_cast<int64_t>(v.size())}));
                  } else if (a.has("value_int")) {
                    ctx.set_output_constant(0, Tensor::scalar<int64_t>(a.get_int("value_int", 0)));
                  } else if (a.has("value_ints")) {
                    auto v = a.get_ints("value_ints");
                    ctx.set_output_constant(0, Tensor::from_vector(v, {static_cast<int64_t>(v.size())}));
                  } else if (a.has("value_string")) {
                    ctx.set_output_constant(0, Tensor::scalar<std::string>(a.get_string("value_string", "")));
                  } else if (a.has("value_strings")) {
                    auto v = a.get_strings("value_strings");
                    ctx.set_output_constant(0, Tensor::from_vector(v, {static_cast<int64_t>(v.size())}));
                  } else if (a.has("sparse_value")) {
                    ctx.unsupported("sparse_value constants are not supported");
                  } else {
                    ctx.fail("Constant has no value attribute");
                  }
                  return nullptr;
                }}, Repro::Exact);
}
}
