// Scatter reductions shared by ScatterND / ScatterElements: none, add, mul, max, min.
#pragma once
#include <string>

#include "onnx/ops/shape_ops.hpp"

namespace quiver::onnx {

enum class ScatterReduce { None, Add, Mul, Max, Min };

inline ScatterReduce parse_scatter_reduction(const BuildContext& ctx) {
  const std::string r = ctx.attrs().get_string("reduction", "none");
  if (r == "none") return ScatterReduce::None;
  if (r == "add") return ScatterReduce::Add;
  if (r == "mul") return ScatterReduce::Mul;
  if (r == "max") return ScatterReduce::Max;
  if (r == "min") return ScatterReduce::Min;
  ctx.fail("unknown reduction '" + r + "'");
}

template <class T>
inline void scatter_apply(T& dst, const T& src, ScatterReduce r) {
  if constexpr (std::is_same_v<T, std::string>) {
    dst = src;
  } else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    const float a = static_cast<float>(dst), b = static_cast<float>(src);
    switch (r) {
      case ScatterReduce::None: dst = src; break;
      case ScatterReduce::Add: dst = T(a + b); break;
      case ScatterReduce::Mul: dst = T(a * b); break;
      case ScatterReduce::Max: dst = T(std::max(a, b)); break;
      case ScatterReduce::Min: dst = T(std::min(a, b)); break;
    }
  } else if constexpr (std::is_same_v<T, bool>) {
    switch (r) {
      case ScatterReduce::None: dst = src; break;
      case ScatterReduce::Add: case ScatterReduce::Max: dst = dst || src; break;
      case ScatterReduce::Mul: case ScatterReduce::Min: dst = dst && src; break;
    }
  } else {
    switch (r) {
      case ScatterReduce::None: dst = src; break;
      case ScatterReduce::Add: dst = static_cast<T>(dst + src); break;
      case ScatterReduce::Mul: dst = static_cast<T>(dst * src); break;
      case ScatterReduce::Max: dst = std::max(dst, src); break;
      case ScatterReduce::Min: dst = std::min(dst, src); break;
    }
  }
}

// ScatterND's kernel (ops/scatternd.cpp): y = x, then for each of the tuples (n of k int64 indices,
// n = product of tuple_dims) the slice of y it names is replaced or reduced with the updates' slice.
// Errors name the tuple or the dims that do not fit.
void scatter_nd(ExecContext& ec, DType t, ScatterReduce red, const Tensor& x, const int64_t* tuples,
                const std::vector<int64_t>& tuple_dims, int64_t k, const Tensor& upd);

}  // namespace quiver::onnx
