// Shared helpers for the normalisation operators: float-family dtype dispatch and reading
// parameter tensors (scale/bias) as float with unidirectional broadcasting to a target shape.
#pragma once
#include "onnx/ops/common.hpp"

namespace quiver::onnx {

inline bool is_float_family(DType t) { return t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16; }

template <class F>
decltype(auto) visit_float_family(DType dt, F&& f) {
  switch (dt) {
    case DType::F32: return f(TypeTag<float>{});
    case DType::F64: return f(TypeTag<double>{});
    case DType::F16: return f(TypeTag<Half>{});
    case DType::BF16: return f(TypeTag<BFloat16>{});
    default: throw_error(ErrorCode::Unsupported, "unsupported dtype " + std::string(dtype_name(dt)));
  }
}

template <class T> inline double to_double(T v) { return static_cast<double>(static_cast<float>(v)); }
template <> inline double to_double<double>(double v) { return v; }

// Reads `t` as float values broadcast (numpy, unidirectional) to `target` dims, into `out`
// (product(target) values). Returns false when it does not broadcast.
inline bool broadcast_param(const Tensor& t, std::span<const int64_t> target, float* out) {
  const size_t r = target.size();
  if (t.rank() > r) {
    // Allow leading 1s beyond the target rank.
    for (size_t i = 0; i < t.rank() - r; ++i)
      if (t.dim(i) != 1) return false;
  }
  std::vector<int64_t> td;
  for (size_t i = t.rank() > r ? t.rank() - r : 0; i < t.rank(); ++i) td.push_back(t.dim(i));
  for (size_t i = 0; i < td.size(); ++i) {
    const int64_t a = td[td.size() - 1 - i], b = target[r - 1 - i];
    if (a != b && a != 1) return false;
  }
  int64_t st[16];
  if (r > 16) return false;
  broadcast_strides(td, target, st);
  const int64_t n = product(target);
  std::vector<int64_t> idx(r, 0);
  visit_float_family(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = t.data<T>();
    int64_t off = 0;
    for (int64_t i = 0; i < n; ++i) {
      out[i] = static_cast<float>(to_double(p[off]));
      for (size_t d = r; d-- > 0;) {
        if (++idx[d] < target[d]) { off += st[d]; break; }
        off -= st[d] * (target[d] - 1);
        idx[d] = 0;
      }
    }
  });
  return true;
}

}  // namespace quiver::onnx
