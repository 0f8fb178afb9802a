// LabelEncoder (ai.onnx.ml): maps each input value through keys -> values (strings, int64s, floats, or
// keys_tensor / values_tensor from opset 4); values not among the keys get the default (default_string
// "_Unused", default_int64 -1, default_float -0.0, or default_tensor).
#include <map>

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

// A value of any of the three key/value kinds.
struct LVal {
  std::string s;
  int64_t i = 0;
  double f = 0;
  bool operator<(const LVal& o) const {
    if (s != o.s) return s < o.s;
    if (i != o.i) return i < o.i;
    return f < o.f;
  }
};

struct LList {
  DType dtype = DType::Undefined;
  std::vector<LVal> v;
};

LList read_list(const BuildContext& ctx, const std::string& prefix) {
  LList l;
  const auto& A = ctx.attrs();
  if (A.has(prefix + "_strings")) {
    l.dtype = DType::String;
    for (auto& s : A.get_strings(prefix + "_strings")) l.v.push_back({s, 0, 0});
  } else if (A.has(prefix + "_int64s")) {
    l.dtype = DType::I64;
    for (auto x : A.get_ints(prefix + "_int64s")) l.v.push_back({"", x, 0});
  } else if (A.has(prefix + "_floats")) {
    l.dtype = DType::F32;
    for (auto x : A.get_floats(prefix + "_floats")) l.v.push_back({"", 0, x});
  } else if (auto t = A.get_tensor(prefix + "_tensor")) {
    l.dtype = t->dtype();
    for (int64_t k = 0; k < t->numel(); ++k) {
      LVal x;
      if (t->dtype() == DType::String) x.s = t->data<std::string>()[k];
      else if (dtype_is_integer(t->dtype())) convert_elements(t->dtype(), t->data<uint8_t>() + k * dtype_size(t->dtype()), DType::I64, &x.i, 1);
      else convert_elements(t->dtype(), t->data<uint8_t>() + k * dtype_size(t->dtype()), DType::F64, &x.f, 1);
      l.v.push_back(x);
    }
  }
  return l;
}

LVal key_of(const Tensor& x, int64_t k) {
  LVal v;
  if (x.dtype() == DType::String) v.s = x.data<std::string>()[k];
  else if (dtype_is_integer(x.dtype())) convert_elements(x.dtype(), x.data<uint8_t>() + k * dtype_size(x.dtype()), DType::I64, &v.i, 1);
  else convert_elements(x.dtype(), x.data<uint8_t>() + k * dtype_size(x.dtype()), DType::F64, &v.f, 1);
  return v;
}

}  // namespace

QUIVER_REGISTER_OPS(labelencoder) {
  registry.add({"ai.onnx.ml", "LabelEncoder", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const LList keys = read_list(ctx, "keys"), vals = read_list(ctx, "values");
                  if (keys.dtype == DType::Undefined || vals.dtype == DType::Undefined) ctx.fail("keys and values are required");
                  if (keys.v.size() != vals.v.size()) ctx.fail("keys and values have different lengths");
                  const DType ot = vals.dtype;
                  LVal def;
                  const auto& A = ctx.attrs();
                  if (auto dt = A.get_tensor("default_tensor")) {
                    if (dt->numel() < 1) ctx.fail("default_tensor is empty");
                    def = key_of(*dt, 0);
                  } else if (ot == DType::String) {
                    def.s = A.get_string("default_string", "_Unused");
                  } else if (dtype_is_integer(ot)) {
                    def.i = A.get_int("default_int64", -1);
                  } else {
                    def.f = A.get_float("default_float", -0.f);
                  }
                  auto table = std::make_shared<std::map<LVal, LVal>>();
                  for (size_t k = 0; k < keys.v.size(); ++k) table->emplace(keys.v[k], vals.v[k]);
                  ctx.set_output(0, ot, ctx.input(0).shape);
                  return make_kernel([table, def, ot](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    Tensor& y = ec.output(0, ot, x.dims());
                    for (int64_t k = 0; k < x.numel(); ++k) {
                      const auto it = table->find(key_of(x, k));
                      const LVal& v = it == table->end() ? def : it->second;
                      uint8_t* dst = y.data<uint8_t>() + k * dtype_size(ot);
                      if (ot == DType::String) y.data<std::string>()[k] = v.s;
                      else if (dtype_is_integer(ot)) convert_elements(DType::I64, &v.i, ot, dst, 1);
                      else convert_elements(DType::F64, &v.f, ot, dst, 1);
                    }
                  });
                }});
}
}  // namespace quiver::onnx
