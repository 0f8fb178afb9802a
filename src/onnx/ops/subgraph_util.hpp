// Helpers for control-flow operators (If, Loop, Scan): declared subgraph output types and copying
// subplan results into node outputs.
#pragma once
#include <onnx/onnx_pb.h>

#include "onnx/ops/common.hpp"
#include "onnx/plan.hpp"

namespace quiver::onnx {

// Declared element type of output i of graph attribute `attr`; Undefined when not a typed tensor.
inline DType subgraph_output_dtype(const BuildContext& ctx, const std::string& attr, size_t i) {
  const auto* a = ctx.attrs().find(attr);
  if (!a || !a->has_g() || static_cast<int>(i) >= a->g().output_size()) return DType::Undefined;
  const auto& t = a->g().output(static_cast<int>(i)).type();
  if (!t.has_tensor_type()) return DType::Undefined;
  auto dt = dtype_from_onnx(t.tensor_type().elem_type());
  return dt ? *dt : DType::Undefined;
}

// True when output i of graph attribute `attr` is declared with a non-tensor type (sequence, optional ...).
inline bool subgraph_output_non_tensor(const BuildContext& ctx, const std::string& attr, size_t i) {
  const auto* a = ctx.attrs().find(attr);
  if (!a || !a->has_g() || static_cast<int>(i) >= a->g().output_size()) return false;
  const auto& t = a->g().output(static_cast<int>(i)).type();
  return t.value_case() != ::onnx::TypeProto::VALUE_NOT_SET && !t.has_tensor_type();
}

inline size_t subgraph_num_outputs(const BuildContext& ctx, const std::string& attr) {
  const auto* a = ctx.attrs().find(attr);
  return a && a->has_g() ? static_cast<size_t>(a->g().output_size()) : 0;
}

// Copies a tensor (any dtype) into node output i.
inline void copy_to_output(ExecContext& ec, size_t i, const Tensor& src) {
  if (!ec.wants_output(i)) return;
  Tensor& out = ec.output(i, src.dtype(), src.dims());
  copy_elements(src.dtype(), src.raw(), out.raw(), static_cast<size_t>(src.numel()));
}

}  // namespace quiver::onnx

namespace quiver::onnx {

// dst = deep copy of src (storage reused when possible).
inline void assign_tensor(Tensor& dst, const Tensor& src) {
  dst.ensure(src.dtype(), src.dims());
  copy_elements(src.dtype(), src.raw(), dst.raw(), static_cast<size_t>(src.numel()));
}

// Reads a one-element bool/numeric tensor as bool.
inline bool scalar_truth(const Tensor& t) {
  if (t.dtype() == DType::Bool) return t.data<bool>()[0];
  return visit_numeric(t.dtype(), [&](auto tag) { return t.data<typename decltype(tag)::type>()[0] != 0; });
}

}  // namespace quiver::onnx

namespace quiver::onnx {

namespace detail {

inline DType proto_dtype(int32_t code) {
  auto dt = dtype_from_onnx(code);
  return dt ? *dt : DType::Undefined;
}

inline DType trace_dtype(const BuildContext& ctx, const ::onnx::GraphProto& g, const std::vector<ValueInfo>& formal,
                         const std::string& name, int depth) {
  if (depth > 64 || name.empty()) return DType::Undefined;
  auto typed = [&](const ::onnx::ValueInfoProto& v) -> DType {
    if (v.name() != name || !v.type().has_tensor_type()) return DType::Undefined;
    return proto_dtype(v.type().tensor_type().elem_type());
  };
  for (const auto& v : g.value_info())
    if (DType d = typed(v); d != DType::Undefined) return d;
  for (const auto& v : g.output())
    if (DType d = typed(v); d != DType::Undefined) return d;
  for (int k = 0; k < g.input_size(); ++k)
    if (g.input(k).name() == name) {
      if (DType d = typed(g.input(k)); d != DType::Undefined) return d;
      return static_cast<size_t>(k) < formal.size() ? formal[k].dtype : DType::Undefined;
    }
  for (const auto& init : g.initializer())
    if (init.name() == name) return proto_dtype(init.data_type());
  for (const auto& n : g.node()) {
    int oi = -1;
    for (int j = 0; j < n.output_size(); ++j)
      if (n.output(j) == name) oi = j;
    if (oi < 0) continue;
    const std::string& op = n.op_type();
    auto attr = [&](const std::string& an) -> const ::onnx::AttributeProto* {
      for (const auto& a : n.attribute())
        if (a.name() == an) return &a;
      return nullptr;
    };
    auto in = [&](int j) { return j < n.input_size() ? trace_dtype(ctx, g, formal, n.input(j), depth + 1) : DType::Undefined; };
    if (!n.domain().empty() && n.domain() != "ai.onnx") return DType::Undefined;
    if (op == "Constant") {
      if (auto* a = attr("value")) return proto_dtype(a->t().data_type());
      if (attr("value_float") || attr("value_floats")) return DType::F32;
      if (attr("value_int") || attr("value_ints")) return DType::I64;
      if (attr("value_string") || attr("value_strings")) return DType::String;
      return DType::Undefined;
    }
    if (op == "Cast") {
      if (auto* a = attr("to")) return proto_dtype(static_cast<int32_t>(a->i()));
      return DType::Undefined;
    }
    if (op == "CastLike") return in(1);
    if (op == "ConstantOfShape") {
      if (auto* a = attr("value")) return proto_dtype(a->t().data_type());
      return DType::F32;
    }
    if (op == "Shape" || op == "Size" || op == "NonZero" || op == "ArgMax" || op == "ArgMin") return DType::I64;
    if ((op == "TopK" || op == "MaxPool" || op == "Unique") && oi > 0) return DType::I64;
    if (op == "Equal" || op == "Less" || op == "Greater" || op == "LessOrEqual" || op == "GreaterOrEqual" || op == "Not" ||
        op == "And" || op == "Or" || op == "Xor" || op == "IsNaN" || op == "IsInf")
      return DType::Bool;
    if (op == "If" || op == "Loop" || op == "Scan" || op == "Sequence" || op.rfind("Sequence", 0) == 0 ||
        op.rfind("Optional", 0) == 0)
      return DType::Undefined;
    if (op == "Where") return in(1);
    for (int j = 0; j < n.input_size(); ++j)
      if (!n.input(j).empty()) return in(j);
    return DType::Undefined;
  }
  // Outer scope: a value the node itself reads.
  for (size_t j = 0; j < ctx.num_inputs(); ++j)
    if (ctx.input_name(j) == name && ctx.has_input(j)) return ctx.input_dtype(j);
  return DType::Undefined;
}

}  // namespace detail

// Element type of output i of graph attribute `attr`: the declared type, else traced through the
// subgraph's nodes (Constant/Cast/Shape/comparisons/type-preserving ops, formal inputs, initializers).
inline DType subgraph_output_dtype_any(const BuildContext& ctx, const std::string& attr, size_t i,
                                       const std::vector<ValueInfo>& formal = {}) {
  DType d = subgraph_output_dtype(ctx, attr, i);
  if (d != DType::Undefined) return d;
  const auto* a = ctx.attrs().find(attr);
  if (!a || !a->has_g() || static_cast<int>(i) >= a->g().output_size()) return DType::Undefined;
  return detail::trace_dtype(ctx, a->g(), formal, a->g().output(static_cast<int>(i)).name(), 0);
}

}  // namespace quiver::onnx
