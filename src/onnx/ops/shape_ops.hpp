// Helpers for the data-movement operators (Concat, Slice, Transpose, Expand, Tile, Gather, Pad ...):
// dtype dispatch by element width, strided block copies with contiguous inner runs, axis lists.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "onnx/ops/common.hpp"

namespace quiver::onnx {

// Calls f(TypeTag<T>{}) with T an unsigned integer of the dtype's width (data movement never
// needs the real type) or std::string for string tensors.
template <class F>
decltype(auto) visit_width(DType dt, F&& f) {
  if (dt == DType::String) return f(TypeTag<std::string>{});
  switch (dtype_size(dt)) {
    case 1: return f(TypeTag<uint8_t>{});
    case 2: return f(TypeTag<uint16_t>{});
    case 4: return f(TypeTag<uint32_t>{});
    case 8: return f(TypeTag<uint64_t>{});
    default: throw_error(ErrorCode::Unsupported, "unsupported dtype " + std::string(dtype_name(dt)));
  }
}

// Copy n elements (memcpy for trivially copyable T).
template <class T>
inline void copy_n_elems(const T* src, T* dst, int64_t n) {
  if constexpr (std::is_trivially_copyable_v<T>) {
    if (n <= 8) {  // short runs (small channel counts): a loop beats a memcpy call
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
    } else {
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
    }
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// Merge adjacent dims of a strided view where the outer stride equals inner stride * inner dim
// (and drop size-1 dims). dims/strides are modified in place; the view stays equivalent.
inline void collapse_strided(std::vector<int64_t>& dims, std::vector<int64_t>& strides) {
  std::vector<int64_t> d, s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 1) continue;
    if (!d.empty() && s.back() == strides[i] * dims[i]) {
      d.back() *= dims[i];
      s.back() = strides[i];
    } else {
      d.push_back(dims[i]);
      s.push_back(strides[i]);
    }
  }
  if (d.empty()) { d.push_back(1); s.push_back(1); }
  dims = std::move(d);
  strides = std::move(s);
}

// Reshape's target: `spec` against input dims `in` (0 copies the input dim unless allowzero, -1 is
// inferred). Errors go through ec or bc (whichever is set). Defined in reshape.cpp.
std::vector<int64_t> reshape_dims(std::span<const int64_t> in, const std::vector<int64_t>& spec, bool allowzero,
                                  const ExecContext* ec, const BuildContext* bc);

// dst (contiguous, row-major over `dims`) = src viewed with element `strides` (may be negative or 0).
// Odometer over all but the innermost dim; the innermost run is a memcpy when its stride is 1.
template <class T>
void strided_copy(const T* src, T* dst, std::vector<int64_t> dims, std::vector<int64_t> strides) {
  for (auto d : dims)
    if (d == 0) return;
  collapse_strided(dims, strides);
  const size_t r = dims.size();
  const int64_t inner = dims[r - 1], is = strides[r - 1];
  int64_t outer = 1;
  for (size_t i = 0; i + 1 < r; ++i) outer *= dims[i];
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  for (int64_t o = 0; o < outer; ++o) {
    const T* s = src + off;
    if (is == 1) copy_n_elems(s, dst, inner);
    else
      for (int64_t i = 0; i < inner; ++i) dst[i] = s[i * is];
    dst += inner;
    for (size_t d = r - 1; d-- > 0;) {
      if (++idx[d] < dims[d]) { off += strides[d]; break; }
      off -= strides[d] * (dims[d] - 1);
      idx[d] = 0;
    }
  }
}

inline std::vector<int64_t> contiguous_strides(std::span<const int64_t> dims) {
  std::vector<int64_t> s(dims.size());
  int64_t acc = 1;
  for (size_t i = dims.size(); i-- > 0;) { s[i] = acc; acc *= dims[i]; }
  return s;
}

// Broadcast copy (Expand): dst over out dims, src dims right-aligned and each 1 or equal.
// Broadcast dims are produced by replicating an already-written block with memcpy.
template <class T>
void broadcast_copy(const T* src, std::span<const int64_t> in_dims, T* dst, std::span<const int64_t> out_dims) {
  const size_t r = out_dims.size();
  if (numel(out_dims) == 0) return;
  // Aligned in dims, then collapse runs of (broadcast / not broadcast).
  std::vector<int64_t> od, id;
  for (size_t i = 0; i < r; ++i) {
    const int64_t o = out_dims[i];
    const int64_t in = i < r - in_dims.size() ? 1 : in_dims[i - (r - in_dims.size())];
    if (o == 1) continue;
    const bool b = in == 1;
    if (!od.empty()) {
      const bool pb = id.back() == 1 && od.back() != 1;
      if (pb == b) { od.back() *= o; id.back() *= in; continue; }
    }
    od.push_back(o);
    id.push_back(in);
  }
  if (od.empty()) { dst[0] = src[0]; return; }
  const size_t n = od.size();
  std::vector<int64_t> ostride(n), istride(n);
  int64_t so = 1, si = 1;
  for (size_t i = n; i-- > 0;) { ostride[i] = so; istride[i] = si; so *= od[i]; si *= id[i]; }
  auto rec = [&](auto&& self, size_t d, const T* s, T* o) -> void {
    if (d == n - 1) {
      if (id[d] == 1) std::fill_n(o, od[d], s[0]);
      else copy_n_elems(s, o, od[d]);
      return;
    }
    if (id[d] == 1) {
      self(self, d + 1, s, o);
      for (int64_t i = 1; i < od[d]; ++i) copy_n_elems(o, o + i * ostride[d], ostride[d]);
    } else {
      for (int64_t i = 0; i < od[d]; ++i) self(self, d + 1, s + i * istride[d], o + i * ostride[d]);
    }
  };
  rec(rec, 0, src, dst);
}

// Axis list normalised to [0, rank); duplicates rejected.
inline std::vector<int64_t> norm_axes(const std::vector<int64_t>& axes, int64_t rank, const ExecContext* ec,
                                      const BuildContext* bc) {
  std::vector<int64_t> out;
  for (auto a : axes) {
    const int64_t n = norm_axis(a, rank, ec, bc);
    if (std::find(out.begin(), out.end(), n) != out.end()) {
      const std::string m = "duplicate axis " + std::to_string(a);
      if (ec) ec->fail(m);
      if (bc) bc->fail(m);
      throw_error(ErrorCode::InvalidArgument, m);
    }
    out.push_back(n);
  }
  return out;
}

inline bool all_known(const std::optional<std::vector<int64_t>>& s) {
  return s && std::all_of(s->begin(), s->end(), [](int64_t d) { return d >= 0; });
}

// Reads a scalar (or 1-element) tensor of any numeric type as double.
inline double read_scalar_f64(const Tensor& t) {
  return visit_dtype(t.dtype(), [&](auto tag) -> double {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, std::string>) throw_error(ErrorCode::InvalidArgument, "expected a numeric scalar");
    else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) return static_cast<float>(t.data<T>()[0]);
    else return static_cast<double>(t.data<T>()[0]);
  });
}

}  // namespace quiver::onnx
