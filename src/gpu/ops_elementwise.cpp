// Device ops, elementwise: activations and math (F32), broadcasting binary ops and comparisons
// (F32/I64/I32/bool), variadic Max/Min/Sum, Where, Cast, Clip.
#include <cmath>
#include <cstring>
#include <limits>

#include "gpu/executor.hpp"

namespace quiver::gpu {
namespace {

template <UnaryOp U>
void unary_op(OpCtx& c) {
  const Val& x = c.in(0);
  if (x.dtype != DType::F32) c.cpu("float only");
  float a = 0.f, b = 0.f;
  if constexpr (U == UnaryOp::LeakyRelu) a = c.attrs.get_float("alpha", 0.01f);
  if constexpr (U == UnaryOp::Elu) a = c.attrs.get_float("alpha", 1.f);
  if constexpr (U == UnaryOp::HardSigmoid) {
    a = c.attrs.get_float("alpha", 0.2f);
    b = c.attrs.get_float("beta", 0.5f);
  }
  const void* xp = c.dev(0);
  void* y = c.out(0, DType::F32, x.dims);
  c.s.unary(U, xp, y, x.numel(), a, b);
}

void clip_op(OpCtx& c) {
  const Val& x = c.in(0);
  if (x.dtype != DType::F32) c.cpu("float only");
  float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
  if (c.opset() < 11) {
    lo = c.attrs.get_float("min", lo);
    hi = c.attrs.get_float("max", hi);
  } else {
    auto scalar = [&](size_t i, float& v) {
      if (!c.has(i)) return;
      const Tensor& t = c.host(i);
      if (t.numel() != 1 || t.dtype() != DType::F32) c.fail("Clip bound must be a float scalar");
      v = t.data<float>()[0];
    };
    scalar(1, lo);
    scalar(2, hi);
  }
  const void* xp = c.dev(0);
  void* y = c.out(0, DType::F32, x.dims);
  c.s.unary(UnaryOp::Clip, xp, y, x.numel(), lo, hi);
}

template <BinaryOp B>
void binary_op(OpCtx& c) {
  const Val& a = c.in(0);
  const Val& b = c.in(1);
  if (a.dtype != b.dtype) c.cpu("mixed dtypes");
  const DT dt = device_dtype(a.dtype);
  if constexpr (B == BinaryOp::Pow) {
    if (dt != DT::F32) c.cpu("integer Pow");
  }
  if constexpr (B == BinaryOp::And || B == BinaryOp::Or || B == BinaryOp::Xor) {
    if (a.dtype != DType::Bool) c.cpu("logical ops take bool");
  }
  const auto out = broadcast_dims(c, {a.dims, b.dims});
  const Layout l = broadcast_layout(c, out, {a.dims, b.dims});
  const void* ap = c.dev(0);
  const void* bp = c.dev(1);
  void* y = c.out(0, is_comparison(B) ? DType::Bool : a.dtype, out);
  c.s.binary(B, dt, ap, bp, y, l, numel(out));
}

// Max / Min / Sum over any number of inputs: the first pair writes the output, the rest fold into it.
template <BinaryOp B>
void variadic_op(OpCtx& c) {
  std::vector<std::vector<int64_t>> shapes;
  const DType dt0 = c.in(0).dtype;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    if (c.in(i).dtype != dt0) c.cpu("mixed dtypes");
    shapes.push_back(c.in(i).dims);
  }
  const DT dt = device_dtype(dt0);
  const auto out = broadcast_dims(c, shapes);
  const int64_t n = numel(out);
  if (c.num_inputs() == 1) {
    const Layout l = broadcast_layout(c, out, {out, shapes[0]});
    const void* x = c.dev(0);
    c.s.copy_strided(c.out(0, dt0, out), x, dtype_size(dt0), l, n);
    return;
  }
  std::vector<const void*> ptrs;
  for (size_t i = 0; i < c.num_inputs(); ++i) ptrs.push_back(c.dev(i));
  void* y = c.out(0, dt0, out);
  c.s.binary(B, dt, ptrs[0], ptrs[1], y, broadcast_layout(c, out, {shapes[0], shapes[1]}), n);
  for (size_t i = 2; i < ptrs.size(); ++i)
    c.s.binary(B, dt, y, ptrs[i], y, broadcast_layout(c, out, {out, shapes[i]}), n);  // in place: same index
}

void where_op(OpCtx& c) {
  const Val& cond = c.in(0);
  const Val& x = c.in(1);
  const Val& y = c.in(2);
  if (cond.dtype != DType::Bool || x.dtype != y.dtype) c.cpu("dtypes");
  device_dtype(x.dtype);
  const auto out = broadcast_dims(c, {cond.dims, x.dims, y.dims});
  const Layout l = broadcast_layout(c, out, {cond.dims, x.dims, y.dims});
  const void* cp = c.dev(0);
  const void* xp = c.dev(1);
  const void* yp = c.dev(2);
  c.s.where(cp, xp, yp, c.out(0, x.dtype, out), dtype_size(x.dtype), l, numel(out));
}

// Not(bool): x == false, against a one-byte zero broadcast from scratch.
void not_op(OpCtx& c) {
  const Val& x = c.in(0);
  if (x.dtype != DType::Bool) c.cpu("bool only");
  const Layout l = broadcast_layout(c, x.dims, {x.dims, {}});
  const void* xp = c.dev(0);
  void* zero = c.scratch(1);
  c.s.fill(zero, 1, 0, 1);
  c.s.binary(BinaryOp::Equal, DT::U8, xp, zero, c.out(0, DType::Bool, x.dims), l, x.numel());
}

void cast_op(OpCtx& c) {
  const Val& x = c.in(0);
  const auto to = dtype_from_onnx(static_cast<int>(c.attrs.req_int("to")));
  if (!to) c.cpu("target dtype");
  const DT from = device_dtype(x.dtype), dto = device_dtype(*to);
  // The device conversion to one byte is the bool one (x != 0): a true uint8 target truncates instead.
  if (*to == DType::U8 && x.dtype != DType::U8 && x.dtype != DType::Bool) c.cpu("cast to uint8");
  const void* xp = c.dev(0);
  void* y = c.out(0, *to, x.dims);
  if (x.dtype == *to) c.s.copy(y, xp, x.nbytes());
  else c.s.cast(from, dto, xp, y, x.numel());
}

}  // namespace

void register_elementwise_ops() {
  register_device_op("Relu", unary_op<UnaryOp::Relu>);
  register_device_op("LeakyRelu", unary_op<UnaryOp::LeakyRelu>);
  register_device_op("Sigmoid", unary_op<UnaryOp::Sigmoid>);
  register_device_op("Tanh", unary_op<UnaryOp::Tanh>);
  register_device_op("Exp", unary_op<UnaryOp::Exp>);
  register_device_op("Log", unary_op<UnaryOp::Log>);
  register_device_op("Sqrt", unary_op<UnaryOp::Sqrt>);
  register_device_op("Neg", unary_op<UnaryOp::Neg>);
  register_device_op("Abs", unary_op<UnaryOp::Abs>);
  register_device_op("Reciprocal", unary_op<UnaryOp::Reciprocal>);
  register_device_op("Erf", unary_op<UnaryOp::Erf>);
  register_device_op("Floor", unary_op<UnaryOp::Floor>);
  register_device_op("Ceil", unary_op<UnaryOp::Ceil>);
  register_device_op("Sin", unary_op<UnaryOp::Sin>);
  register_device_op("Cos", unary_op<UnaryOp::Cos>);
  register_device_op("Elu", unary_op<UnaryOp::Elu>);
  register_device_op("HardSigmoid", unary_op<UnaryOp::HardSigmoid>);
  register_device_op("Softplus", unary_op<UnaryOp::Softplus>);
  register_device_op("Sign", unary_op<UnaryOp::Sign>);
  register_device_op("Atan", unary_op<UnaryOp::Atan>);
  register_device_op("Not", not_op);
  register_device_op("Clip", clip_op);
  register_device_op("Add", binary_op<BinaryOp::Add>);
  register_device_op("Sub", binary_op<BinaryOp::Sub>);
  register_device_op("Mul", binary_op<BinaryOp::Mul>);
  register_device_op("Div", binary_op<BinaryOp::Div>);
  register_device_op("Pow", binary_op<BinaryOp::Pow>);
  register_device_op("Equal", binary_op<BinaryOp::Equal>);
  register_device_op("Less", binary_op<BinaryOp::Less>);
  register_device_op("LessOrEqual", binary_op<BinaryOp::LessOrEqual>);
  register_device_op("Greater", binary_op<BinaryOp::Greater>);
  register_device_op("GreaterOrEqual", binary_op<BinaryOp::GreaterOrEqual>);
  register_device_op("And", binary_op<BinaryOp::And>);
  register_device_op("Or", binary_op<BinaryOp::Or>);
  register_device_op("Xor", binary_op<BinaryOp::Xor>);
  register_device_op("Max", variadic_op<BinaryOp::Max>);
  register_device_op("Min", variadic_op<BinaryOp::Min>);
  register_device_op("Sum", variadic_op<BinaryOp::Add>);
  register_device_op("Where", where_op);
  register_device_op("Cast", cast_op);
}

}  // namespace quiver::gpu
