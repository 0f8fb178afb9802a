// Device ops, elementwise: activations and math (F32), broadcasting binary ops and comparisons
// (F32/I64/I32/bool), variadic Max/Min/Sum, Where, Cast, Clip. Each builder runs once per step at
// load: it checks the dtypes and static ranks, reads the attributes, and returns the kernel (or
// declines, and the step runs its CPU kernel).
#include <cmath>
#include <cstring>
#include <limits>

#include "gpu/executor.hpp"

namespace quiver::gpu {
namespace {

template <UnaryOp U>
std::unique_ptr<const DeviceOp> build_unary(DeviceBuild& b) {
  if (b.dtype(0) != DType::F32) return b.decline("float only");
  float alpha = 0.f, beta = 0.f;
  if constexpr (U == UnaryOp::LeakyRelu) alpha = b.attrs().get_float("alpha", 0.01f);
  if constexpr (U == UnaryOp::Elu) alpha = b.attrs().get_float("alpha", 1.f);
  if constexpr (U == UnaryOp::HardSigmoid) {
    alpha = b.attrs().get_float("alpha", 0.2f);
    beta = b.attrs().get_float("beta", 0.5f);
  }
  return device_op([alpha, beta](OpCtx& c) {
    const Val& x = c.in(0);
    const void* xp = c.dev(0);
    void* y = c.out(0, DType::F32, x.dims);
    c.s.unary(U, xp, y, x.numel(), alpha, beta);
  });
}

std::unique_ptr<const DeviceOp> build_clip(DeviceBuild& b) {
  if (b.dtype(0) != DType::F32) return b.decline("float only");
  float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
  bool runtime_bounds = false;  // a bound computed by the graph: read on the host per call
  if (b.opset() < 11) {
    lo = b.attrs().get_float("min", lo);
    hi = b.attrs().get_float("max", hi);
  } else {
    for (size_t i : {size_t{1}, size_t{2}}) {
      if (!b.has(i)) continue;
      if (b.dtype(i) != DType::F32) return b.decline("Clip bound is not a float");
      if (const Tensor* t = b.constant(i)) {
        if (t->numel() != 1) return b.decline("Clip bound is not a scalar");
        (i == 1 ? lo : hi) = t->data<float>()[0];
      } else {
        b.read_on_host(i);
        runtime_bounds = true;
      }
    }
  }
  return device_op([lo, hi, runtime_bounds](OpCtx& c) {
    const Val& x = c.in(0);
    float l = lo, h = hi;
    if (runtime_bounds) {
      auto scalar = [&](size_t i, float& v) {
        if (!c.has(i)) return;
        const Tensor& t = c.host(i);
        if (t.numel() != 1 || t.dtype() != DType::F32) c.fail("Clip bound must be a float scalar");
        v = t.data<float>()[0];
      };
      scalar(1, l);
      scalar(2, h);
    }
    const void* xp = c.dev(0);
    void* y = c.out(0, DType::F32, x.dims);
    c.s.unary(UnaryOp::Clip, xp, y, x.numel(), l, h);
  });
}

template <BinaryOp B>
std::unique_ptr<const DeviceOp> build_binary(DeviceBuild& b) {
  const DType t = b.dtype(0);
  if (t != b.dtype(1)) return b.decline("mixed dtypes");
  const auto dt = device_dtype(t);
  if (!dt) return b.decline("dtype has no device kernels");
  if constexpr (B == BinaryOp::Pow) {
    if (*dt != DT::F32) return b.decline("integer Pow");
  }
  if constexpr (B == BinaryOp::And || B == BinaryOp::Or || B == BinaryOp::Xor) {
    if (t != DType::Bool) return b.decline("logical ops take bool");
  }
  const DType out_t = is_comparison(B) ? DType::Bool : t;
  return device_op([dt = *dt, out_t](OpCtx& c) {
    const Val& a = c.in(0);
    const Val& bv = c.in(1);
    const auto out = broadcast_dims(c, {a.dims, bv.dims});
    const void* ap = c.dev(0);
    const void* bp = c.dev(1);
    char* y = static_cast<char*>(c.out(0, out_t, out));
    const size_t es = dtype_size(out_t);
    launch(broadcast_space(c, out, {a.dims, bv.dims}), [&](const Layout& l, int64_t n, int64_t first) {
      c.s.binary(B, dt, ap, bp, y + first * es, l, n);
    });
  });
}

// Max / Min / Sum over any number of inputs: the first pair writes the output, the rest fold into it.
template <BinaryOp B>
std::unique_ptr<const DeviceOp> build_variadic(DeviceBuild& b) {
  const DType t = b.dtype(0);
  for (size_t i = 0; i < b.num_inputs(); ++i)
    if (b.dtype(i) != t) return b.decline("mixed dtypes");
  const auto dt = device_dtype(t);
  if (!dt) return b.decline("dtype has no device kernels");
  return device_op([dt = *dt, t](OpCtx& c) {
    std::vector<std::vector<int64_t>> shapes;
    for (size_t i = 0; i < c.num_inputs(); ++i) shapes.push_back(c.in(i).dims);
    const auto out = broadcast_dims(c, shapes);
    const size_t es = dtype_size(t);
    if (c.num_inputs() == 1) {
      const void* x = c.dev(0);
      void* y = c.out(0, t, out);
      launch(broadcast_space(c, out, {out, shapes[0]}), [&](const Layout& l, int64_t n, int64_t) {
        c.s.copy_strided(y, x, es, l, n);  // stride[0]: the contiguous destination
      });
      return;
    }
    std::vector<const void*> ptrs;
    for (size_t i = 0; i < c.num_inputs(); ++i) ptrs.push_back(c.dev(i));
    char* y = static_cast<char*>(c.out(0, t, out));
    launch(broadcast_space(c, out, {shapes[0], shapes[1]}), [&](const Layout& l, int64_t n, int64_t first) {
      c.s.binary(B, dt, ptrs[0], ptrs[1], y + first * es, l, n);
    });
    for (size_t i = 2; i < ptrs.size(); ++i)  // in place: operand 0 is the output, same index
      launch(broadcast_space(c, out, {out, shapes[i]}), [&](const Layout& l, int64_t n, int64_t first) {
        c.s.binary(B, dt, y, ptrs[i], y + first * es, l, n);
      });
  });
}

std::unique_ptr<const DeviceOp> build_where(DeviceBuild& b) {
  if (b.dtype(0) != DType::Bool || b.dtype(1) != b.dtype(2)) return b.decline("dtypes");
  if (!device_dtype(b.dtype(1))) return b.decline("dtype has no device kernels");
  return device_op([](OpCtx& c) {
    const Val& cond = c.in(0);
    const Val& x = c.in(1);
    const Val& y = c.in(2);
    const auto out = broadcast_dims(c, {cond.dims, x.dims, y.dims});
    const void* cp = c.dev(0);
    const void* xp = c.dev(1);
    const void* yp = c.dev(2);
    const size_t es = dtype_size(x.dtype);
    char* o = static_cast<char*>(c.out(0, x.dtype, out));
    launch(broadcast_space(c, out, {cond.dims, x.dims, y.dims}), [&](const Layout& l, int64_t n, int64_t first) {
      c.s.where(cp, xp, yp, o + first * es, es, l, n);
    });
  });
}

// Not(bool): x == false, against a one-byte zero broadcast from scratch.
std::unique_ptr<const DeviceOp> build_not(DeviceBuild& b) {
  if (b.dtype(0) != DType::Bool) return b.decline("bool only");
  return device_op([](OpCtx& c) {
    const Val& x = c.in(0);
    const void* xp = c.dev(0);
    void* zero = c.scratch(1);
    c.s.fill(zero, 1, 0, 1);
    char* y = static_cast<char*>(c.out(0, DType::Bool, x.dims));
    launch(broadcast_space(c, x.dims, {x.dims, {}}), [&](const Layout& l, int64_t n, int64_t first) {
      c.s.binary(BinaryOp::Equal, DT::U8, xp, zero, y + first, l, n);
    });
  });
}

std::unique_ptr<const DeviceOp> build_cast(DeviceBuild& b) {
  const auto to = dtype_from_onnx(static_cast<int>(b.attrs().get_int("to", 0)));
  if (!to) return b.decline("target dtype");
  const DType from_t = b.dtype(0);
  const auto from = device_dtype(from_t), dto = device_dtype(*to);
  if (!from || !dto) return b.decline("dtype has no device kernels");
  // The device conversion to one byte is the bool one (x != 0): a true uint8 target truncates instead.
  if (*to == DType::U8 && from_t != DType::U8 && from_t != DType::Bool) return b.decline("cast to uint8");
  return device_op([from = *from, dto = *dto, to = *to](OpCtx& c) {
    const Val& x = c.in(0);
    const void* xp = c.dev(0);
    void* y = c.out(0, to, x.dims);
    if (x.dtype == to) c.s.copy(y, xp, x.nbytes());
    else c.s.cast(from, dto, xp, y, x.numel());
  });
}

}  // namespace

void add_elementwise_ops(DeviceOpTable& t) {
  t.add("", "Relu", build_unary<UnaryOp::Relu>);
  t.add("", "LeakyRelu", build_unary<UnaryOp::LeakyRelu>);
  t.add("", "Sigmoid", build_unary<UnaryOp::Sigmoid>);
  t.add("", "Tanh", build_unary<UnaryOp::Tanh>);
  t.add("", "Exp", build_unary<UnaryOp::Exp>);
  t.add("", "Log", build_unary<UnaryOp::Log>);
  t.add("", "Sqrt", build_unary<UnaryOp::Sqrt>);
  t.add("", "Neg", build_unary<UnaryOp::Neg>);
  t.add("", "Abs", build_unary<UnaryOp::Abs>);
  t.add("", "Reciprocal", build_unary<UnaryOp::Reciprocal>);
  t.add("", "Erf", build_unary<UnaryOp::Erf>);
  t.add("", "Floor", build_unary<UnaryOp::Floor>);
  t.add("", "Ceil", build_unary<UnaryOp::Ceil>);
  t.add("", "Sin", build_unary<UnaryOp::Sin>);
  t.add("", "Cos", build_unary<UnaryOp::Cos>);
  t.add("", "Elu", build_unary<UnaryOp::Elu>);
  t.add("", "HardSigmoid", build_unary<UnaryOp::HardSigmoid>);
  t.add("", "Softplus", build_unary<UnaryOp::Softplus>);
  t.add("", "Sign", build_unary<UnaryOp::Sign>);
  t.add("", "Atan", build_unary<UnaryOp::Atan>);
  t.add("", "Not", build_not);
  t.add("", "Clip", build_clip);
  t.add("", "Add", build_binary<BinaryOp::Add>);
  t.add("", "Sub", build_binary<BinaryOp::Sub>);
  t.add("", "Mul", build_binary<BinaryOp::Mul>);
  t.add("", "Div", build_binary<BinaryOp::Div>);
  t.add("", "Pow", build_binary<BinaryOp::Pow>);
  t.add("", "Equal", build_binary<BinaryOp::Equal>);
  t.add("", "Less", build_binary<BinaryOp::Less>);
  t.add("", "LessOrEqual", build_binary<BinaryOp::LessOrEqual>);
  t.add("", "Greater", build_binary<BinaryOp::Greater>);
  t.add("", "GreaterOrEqual", build_binary<BinaryOp::GreaterOrEqual>);
  t.add("", "And", build_binary<BinaryOp::And>);
  t.add("", "Or", build_binary<BinaryOp::Or>);
  t.add("", "Xor", build_binary<BinaryOp::Xor>);
  t.add("", "Max", build_variadic<BinaryOp::Max>);
  t.add("", "Min", build_variadic<BinaryOp::Min>);
  t.add("", "Sum", build_variadic<BinaryOp::Add>);
  t.add("", "Where", build_where);
  t.add("", "Cast", build_cast);
}

}  // namespace quiver::gpu
