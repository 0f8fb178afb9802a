#include "onnx/kernel.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>

#include "onnx/proto_io.hpp"
#include "quiver/core/shape.hpp"

namespace quiver::onnx {

// ---- Attributes ----
const ::onnx::AttributeProto* Attributes::find(const std::string& name) const {
  for (const auto& a : node_->attribute())
    if (a.name() == name) return &a;
  return nullptr;
}
bool Attributes::has(const std::string& name) const { return find(name) != nullptr; }

int64_t Attributes::get_int(const std::string& name, int64_t def) const {
  const auto* a = find(name);
  return a ? a->i() : def;
}
float Attributes::get_float(const std::string& name, float def) const {
  const auto* a = find(name);
  return a ? a->f() : def;
}
std::string Attributes::get_string(const std::string& name, const std::string& def) const {
  const auto* a = find(name);
  return a ? a->s() : def;
}
std::vector<int64_t> Attributes::get_ints(const std::string& name, std::vector<int64_t> def) const {
  const auto* a = find(name);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : def;
}
std::vector<float> Attributes::get_floats(const std::string& name, std::vector<float> def) const {
  const auto* a = find(name);
  return a ? std::vector<float>(a->floats().begin(), a->floats().end()) : def;
}
std::vector<std::string> Attributes::get_strings(const std::string& name, std::vector<std::string> def) const {
  const auto* a = find(name);
  return a ? std::vector<std::string>(a->strings().begin(), a->strings().end()) : def;
}
std::optional<Tensor> Attributes::get_tensor(const std::string& name) const {
  const auto* a = find(name);
  if (!a || !a->has_t()) return std::nullopt;
  return tensor_from_proto(a->t(), "", "attribute " + name);
}
static void missing(const ::onnx::NodeProto* n, const std::string& name) {
  throw_error(ErrorCode::InvalidArgument, "required attribute '" + name + "' is missing",
              {"", n->name() + " (" + n->op_type() + ")"});
}
int64_t Attributes::req_int(const std::string& name) const {
  if (!has(name)) missing(node_, name);
  return get_int(name, 0);
}
std::vector<int64_t> Attributes::req_ints(const std::string& name) const {
  if (!has(name)) missing(node_, name);
  return get_ints(name);
}
std::string Attributes::req_string(const std::string& name) const {
  if (!has(name)) missing(node_, name);
  return get_string(name, "");
}
std::vector<std::string> Attributes::names() const {
  std::vector<std::string> out;
  for (const auto& a : node_->attribute()) out.push_back(a.name());
  return out;
}

// ---- BuildContext helpers ----
void BuildContext::fail(const std::string& message, const std::string& tensor, ErrorCode code) const {
  throw Error(code, message, {model_name(), node_name() + " (" + op_type() + ")", tensor});
}

void BuildContext::expect_inputs(size_t min, size_t max) const {
  size_t n = num_inputs();
  while (n > 0 && !input(n - 1).present) --n;
  if (n < min || n > max)
    fail("expects " + (min == max ? std::to_string(min) : std::to_string(min) + ".." + std::to_string(max)) +
         " inputs, got " + std::to_string(n));
  for (size_t i = 0; i < min; ++i)
    if (!input(i).present) fail("required input " + std::to_string(i) + " is empty");
}

void BuildContext::expect_dtype(size_t i, std::initializer_list<DType> allowed) const {
  DType t = input(i).dtype;
  if (std::find(allowed.begin(), allowed.end(), t) != allowed.end()) return;
  std::string names;
  for (DType a : allowed) names += (names.empty() ? "" : ", ") + std::string(dtype_name(a));
  fail("input " + std::to_string(i) + " has dtype " + std::string(dtype_name(t)) + ", expected one of: " + names,
       input_name(i));
}

std::optional<std::vector<int64_t>> BuildContext::const_ints(size_t i) const {
  if (!has_input(i) || !input(i).constant) return std::nullopt;
  const Tensor& t = *input(i).constant;
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::I64) std::copy_n(t.data<int64_t>(), out.size(), out.begin());
  else if (t.dtype() == DType::I32) std::copy_n(t.data<int32_t>(), out.size(), out.begin());
  else return std::nullopt;
  return out;
}

// ---- registry ----
OpRegistry& OpRegistry::instance() {
  static OpRegistry r;
  return r;
}
void OpRegistry::add(OpDef def) {
  for (auto& d : defs_)
    if (d.domain == def.domain && d.op_type == def.op_type) { d = std::move(def); return; }
  defs_.push_back(std::move(def));
}
const OpDef* OpRegistry::find(const std::string& domain, const std::string& op_type) const {
  const std::string& dom = domain == "ai.onnx" ? std::string() : domain;
  for (const auto& d : defs_)
    if (d.op_type == op_type && d.domain == dom) return &d;
  return nullptr;
}
std::vector<std::string> OpRegistry::list() const {
  std::vector<std::string> out;
  for (const auto& d : defs_) out.push_back(d.domain.empty() ? d.op_type : d.domain + "::" + d.op_type);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace quiver::onnx
