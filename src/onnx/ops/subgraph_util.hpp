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
