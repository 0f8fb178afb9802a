// Shared helpers for operator files: dtype dispatch, broadcasting, elementwise drivers, axes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "onnx/kernel.hpp"
#include "quiver/core/half.hpp"
#include "quiver/core/shape.hpp"

namespace quiver::onnx {

template <class T> struct TypeTag { using type = T; };

// Calls f(TypeTag<T>{}) for the C++ type of `dt`. F16/BF16 map to Half/BFloat16 storage types.
template <class F>
decltype(auto) visit_dtype(DType dt, F&& f) {
  switch (dt) {
    case DType::F32: return f(TypeTag<float>{});
    case DType::F64: return f(TypeTag<double>{});
    case DType::I8: return f(TypeTag<int8_t>{});
    case DType::I16: return f(TypeTag<int16_t>{});
    case DType::I32: return f(TypeTag<int32_t>{});
    case DType::I64: return f(TypeTag<int64_t>{});
    case DType::U8: return f(TypeTag<uint8_t>{});
    case DType::U16: return f(TypeTag<uint16_t>{});
    case DType::U32: return f(TypeTag<uint32_t>{});
    case DType::U64: return f(TypeTag<uint64_t>{});
    case DType::Bool: return f(TypeTag<bool>{});
    case DType::F16: return f(TypeTag<Half>{});
    case DType::BF16: return f(TypeTag<BFloat16>{});
    case DType::String: return f(TypeTag<std::string>{});
    default: throw_error(ErrorCode::Unsupported, "unsupported dtype " + std::string(dtype_name(dt)));
  }
}

// Numeric types only (no string/bool/half): what arithmetic kernels are written for. Its own
// switch on purpose: written as visit_dtype + `if constexpr`, clang 14 left member templates called
// from the kernels' generic lambdas uninstantiated (undefined references at link time).
template <class F>
decltype(auto) visit_numeric(DType dt, F&& f) {
  switch (dt) {
    case DType::F32: return f(TypeTag<float>{});
    case DType::F64: return f(TypeTag<double>{});
    case DType::I8: return f(TypeTag<int8_t>{});
    case DType::I16: return f(TypeTag<int16_t>{});
    case DType::I32: return f(TypeTag<int32_t>{});
    case DType::I64: return f(TypeTag<int64_t>{});
    case DType::U8: return f(TypeTag<uint8_t>{});
    case DType::U16: return f(TypeTag<uint16_t>{});
    case DType::U32: return f(TypeTag<uint32_t>{});
    case DType::U64: return f(TypeTag<uint64_t>{});
    default: throw_error(ErrorCode::Unsupported, "unsupported dtype " + std::string(dtype_name(dt)));
  }
}

template <class T> inline float to_f32(T v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return static_cast<float>(v);
}

// Copies `n` elements of any dtype (strings element-wise).
inline void copy_elements(DType dt, const void* src, void* dst, size_t n) {
  if (dt == DType::String) {
    auto* s = static_cast<const std::string*>(src);
    auto* d = static_cast<std::string*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = s[i];
  } else if (n) {
    std::memmove(dst, src, n * dtype_size(dt));
  }
}

// Multidirectional (numpy) broadcasting. Throws InvalidArgument when incompatible.
inline bool broadcast_dims(std::span<const int64_t> a, std::span<const int64_t> b, std::vector<int64_t>& out) {
  const size_t r = std::max(a.size(), b.size());
  out.assign(r, 1);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da == db || db == 1) out[i] = da;
    else if (da == 1) out[i] = db;
    else return false;
  }
  return true;
}

// Static-shape broadcast for build-time shape inference (-1 = unknown).
inline std::optional<std::vector<int64_t>> broadcast_static(const std::optional<std::vector<int64_t>>& a,
                                                            const std::optional<std::vector<int64_t>>& b) {
  if (!a || !b) return std::nullopt;
  const size_t r = std::max(a->size(), b->size());
  std::vector<int64_t> out(r, 1);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - a->size() ? 1 : (*a)[i - (r - a->size())];
    const int64_t db = i < r - b->size() ? 1 : (*b)[i - (r - b->size())];
    if (da == 1) out[i] = db;
    else if (db == 1) out[i] = da;
    else if (da == -1 || db == -1) out[i] = da == -1 ? db : da;
    else out[i] = da;
  }
  return out;
}

// Element strides of `in` broadcast to `out` dims (0 where broadcast).
inline void broadcast_strides(std::span<const int64_t> in, std::span<const int64_t> out, int64_t* strides) {
  const size_t r = out.size(), off = r - in.size();
  int64_t s = 1;
  for (size_t i = r; i-- > 0;) {
    if (i < off) { strides[i] = 0; continue; }
    const int64_t d = in[i - off];
    strides[i] = d == 1 ? 0 : s;
    s *= d;
  }
}

// out[i] = f(a[ia], b[ib]) with numpy broadcasting; fast paths for equal shapes, scalars and
// a trailing-dims broadcast (bias add).
template <class A, class B, class O, class F>
void broadcast_binary(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const A* pa = a.data<A>();
  const B* pb = b.data<B>();
  O* po = out.data<O>();
  const int64_t n = out.numel();
  if (n == 0) return;
  if (a.numel() == n && b.numel() == n) {
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    return;
  }
  if (b.numel() == 1 && a.numel() == n) {
    const B v = pb[0];
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], v);
    return;
  }
  if (a.numel() == 1 && b.numel() == n) {
    const A v = pa[0];
    for (int64_t i = 0; i < n; ++i) po[i] = f(v, pb[i]);
    return;
  }
  // b covers the trailing dims of a exactly (e.g. [N,C] + [C]).
  if (a.numel() == n && b.numel() > 0 && n % b.numel() == 0) {
    const auto& ad = a.dims();
    const auto& bd = b.dims();
    bool trailing = bd.size() <= ad.size();
    for (size_t i = 0; trailing && i < bd.size(); ++i) trailing = bd[bd.size() - 1 - i] == ad[ad.size() - 1 - i];
    if (trailing) {
      const int64_t inner = b.numel();
      for (int64_t o = 0; o < n; o += inner)
        for (int64_t i = 0; i < inner; ++i) po[o + i] = f(pa[o + i], pb[i]);
      return;
    }
  }
  const auto& od = out.dims();
  const size_t r = od.size();
  int64_t sa[16], sb[16], idx[16] = {0};
  if (r > 16) throw_error(ErrorCode::Unsupported, "broadcast of rank > 16");
  broadcast_strides(a.dims(), od, sa);
  broadcast_strides(b.dims(), od, sb);
  // Innermost dim handled as a loop; odometer over the rest.
  const int64_t inner = od[r - 1], ia_step = sa[r - 1], ib_step = sb[r - 1];
  int64_t oa = 0, ob = 0;
  for (int64_t o = 0; o < n; o += inner) {
    for (int64_t i = 0; i < inner; ++i) po[o + i] = f(pa[oa + i * ia_step], pb[ob + i * ib_step]);
    for (size_t d = r - 1; d-- > 0;) {
      if (++idx[d] < od[d]) { oa += sa[d]; ob += sb[d]; break; }
      oa -= sa[d] * (od[d] - 1);
      ob -= sb[d] * (od[d] - 1);
      idx[d] = 0;
    }
  }
}

// Normalise a possibly negative axis against rank; fails with a clear message when out of range.
inline int64_t norm_axis(int64_t axis, int64_t rank, const ExecContext* ctx = nullptr, const BuildContext* bctx = nullptr) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= std::max<int64_t>(rank, 1)) {
    const std::string msg = "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank);
    if (ctx) ctx->fail(msg);
    if (bctx) bctx->fail(msg);
    throw_error(ErrorCode::InvalidArgument, msg);
  }
  return a;
}

// Reads an int tensor (int32/int64) as int64 values.
inline std::vector<int64_t> read_ints(const Tensor& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::I64) std::copy_n(t.data<int64_t>(), v.size(), v.begin());
  else if (t.dtype() == DType::I32) std::copy_n(t.data<int32_t>(), v.size(), v.begin());
  else throw_error(ErrorCode::InvalidArgument, "expected an int32/int64 tensor, got " + std::string(dtype_name(t.dtype())));
  return v;
}

inline int64_t product(std::span<const int64_t> d, size_t from = 0, size_t to = SIZE_MAX) {
  int64_t p = 1;
  for (size_t i = from; i < std::min(to, d.size()); ++i) p *= d[i];
  return p;
}

}  // namespace quiver::onnx
