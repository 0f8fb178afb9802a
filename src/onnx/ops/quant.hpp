// Shared by QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear / MatMulInteger / QLinearMatMul:
// how a scale / zero-point tensor maps onto the data (per tensor, per axis, blocked), integer
// saturation, and integer batch matmul with numpy broadcasting.
#pragma once
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {

// For element (o, k, i) of data viewed as [outer, n, inner] around `axis`: index into the scale.
struct QuantLayout {
  enum class Kind { Tensor, Axis, Blocked } kind = Kind::Tensor;
  int64_t outer = 1, n = 1, inner = 1, block = 0, nblocks = 1;
};

inline QuantLayout quant_layout(ExecContext& ec, const Tensor& x, const Tensor& scale, int64_t axis, int64_t block_size) {
  QuantLayout L;
  if (scale.numel() == 1 && block_size <= 0) return L;
  const int64_t r = static_cast<int64_t>(x.rank());
  const size_t a = static_cast<size_t>(norm_axis(axis, r, &ec));
  L.outer = product(x.dims(), 0, a);
  L.n = x.dim(a);
  L.inner = product(x.dims(), a + 1);
  if (block_size <= 0) {
    if (scale.rank() != 1 || scale.dim(0) != L.n)
      ec.fail("scale shape " + dims_to_string(scale.dims()) + " is neither a scalar nor [" + std::to_string(L.n) + "] along axis " +
              std::to_string(axis), "scale");
    L.kind = QuantLayout::Kind::Axis;
    return L;
  }
  L.kind = QuantLayout::Kind::Blocked;
  L.block = block_size;
  L.nblocks = (L.n + block_size - 1) / block_size;
  if (scale.rank() != x.rank() || scale.numel() != L.outer * L.nblocks * L.inner)
    ec.fail("blocked scale shape " + dims_to_string(scale.dims()) + " does not match input " + dims_to_string(x.dims()) +
            " with block_size " + std::to_string(block_size), "scale");
  return L;
}

inline int64_t quant_index(const QuantLayout& L, int64_t o, int64_t k, int64_t i) {
  switch (L.kind) {
    case QuantLayout::Kind::Tensor: return 0;
    case QuantLayout::Kind::Axis: return k;
    case QuantLayout::Kind::Blocked: return (o * L.nblocks + k / L.block) * L.inner + i;
  }
  return 0;
}

// Visits every element of data viewed through L: f(element index, scale index).
template <class F>
inline void for_each_quant(const QuantLayout& L, int64_t numel, F&& f) {
  const bool whole = L.kind == QuantLayout::Kind::Tensor;
  const int64_t outer = whole ? 1 : L.outer, n = whole ? numel : L.n, inner = whole ? 1 : L.inner;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t i = 0; i < inner; ++i) f((o * n + k) * inner + i, quant_index(L, o, k, i));
}

// Values of a numeric tensor as double (empty tensor -> empty vector).
inline std::vector<double> as_doubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  if (!v.empty()) convert_elements(t.dtype(), t.raw(), DType::F64, v.data(), t.numel());
  return v;
}

// The scale (input 1) and optional zero point (input 2) of QuantizeLinear / DequantizeLinear.
struct QuantParams {
  QuantLayout layout;
  std::vector<double> scale, zero;  // zero empty: no zero point
  double zero_at(size_t q) const { return zero.empty() ? 0.0 : zero[q]; }
};
inline QuantParams quant_params(ExecContext& ec, const Tensor& x, int64_t axis, int64_t block, const char* zero_name) {
  const Tensor& s = ec.input(1);
  QuantParams p{quant_layout(ec, x, s, axis, block), as_doubles(s), {}};
  if (ec.has_input(2)) {
    p.zero = as_doubles(ec.input(2));
    if (p.zero.size() != p.scale.size()) ec.fail("zero point and scale shapes differ", zero_name);
  }
  return p;
}

// The `output_dtype` attribute (opset 21+), or `def` when absent.
inline DType output_dtype_attr(BuildContext& ctx, DType def) {
  const int64_t od = ctx.attrs().get_int("output_dtype", 0);
  if (od == 0) return def;
  const auto d = dtype_from_onnx(static_cast<int32_t>(od));
  if (!d) ctx.unsupported("output_dtype " + std::to_string(od) + " is not supported");
  return *d;
}

inline bool is_quant_int(DType t) {
  return t == DType::I8 || t == DType::U8 || t == DType::I16 || t == DType::U16 || t == DType::I32;
}

template <class Q>
inline Q saturate_round(double v) {
  const double r = std::nearbyint(v);  // halves to even
  if (!(r >= static_cast<double>(std::numeric_limits<Q>::lowest()))) return std::numeric_limits<Q>::lowest();
  if (r > static_cast<double>(std::numeric_limits<Q>::max())) return std::numeric_limits<Q>::max();
  return static_cast<Q>(r);
}

// Integer batch matmul with numpy semantics: C[..., M, N] = sum_k A'[..., M, K] * B'[..., K, N] where
// A' = A - a_zero (scalar or per row) and B' = B - b_zero (scalar or per column). 1-D A / B are promoted
// as numpy does. Returns the output dims; acc gets int32 results.
inline std::vector<int64_t> int_matmul(ExecContext& ec, const Tensor& A, const Tensor& B, const std::vector<double>& azp,
                                       const std::vector<double>& bzp, std::vector<int32_t>& acc) {
  std::vector<int64_t> ad = A.dims(), bd = B.dims();
  if (ad.empty() || bd.empty()) ec.fail("MatMul inputs must have rank >= 1");
  const bool a1 = ad.size() == 1, b1 = bd.size() == 1;
  if (a1) ad.insert(ad.begin(), 1);
  if (b1) bd.push_back(1);
  const int64_t M = ad[ad.size() - 2], K = ad.back(), N = bd.back();
  if (bd[bd.size() - 2] != K) ec.fail("inner dimensions differ: " + dims_to_string(A.dims()) + " x " + dims_to_string(B.dims()));
  std::vector<int64_t> abatch(ad.begin(), ad.end() - 2), bbatch(bd.begin(), bd.end() - 2), batch;
  if (!broadcast_dims(abatch, bbatch, batch)) ec.fail("batch dimensions cannot be broadcast");
  const int64_t nb = product(batch);
  std::vector<int64_t> sa(batch.size()), sb(batch.size());
  if (!batch.empty()) {
    broadcast_strides(abatch, batch, sa.data());
    broadcast_strides(bbatch, batch, sb.data());
  }
  if (azp.size() > 1 && static_cast<int64_t>(azp.size()) != M) ec.fail("a_zero_point must be a scalar or have M elements");
  if (bzp.size() > 1 && static_cast<int64_t>(bzp.size()) != N) ec.fail("b_zero_point must be a scalar or have N elements");
  std::vector<double> av = as_doubles(A), bv = as_doubles(B);
  acc.assign(static_cast<size_t>(nb * M * N), 0);
  std::vector<int64_t> idx(batch.size(), 0);
  for (int64_t b = 0; b < nb; ++b) {
    int64_t oa = 0, ob = 0;
    for (size_t d = 0; d < batch.size(); ++d) { oa += idx[d] * sa[d]; ob += idx[d] * sb[d]; }
    const double* pa = av.data() + oa * M * K;
    const double* pb = bv.data() + ob * K * N;
    int32_t* pc = acc.data() + b * M * N;
    for (int64_t m = 0; m < M; ++m) {
      const double za = azp.empty() ? 0 : azp[azp.size() == 1 ? 0 : static_cast<size_t>(m)];
      for (int64_t k = 0; k < K; ++k) {
        const int64_t x = static_cast<int64_t>(pa[m * K + k] - za);
        for (int64_t n = 0; n < N; ++n) {
          const double zb = bzp.empty() ? 0 : bzp[bzp.size() == 1 ? 0 : static_cast<size_t>(n)];
          pc[m * N + n] += static_cast<int32_t>(x * static_cast<int64_t>(pb[k * N + n] - zb));
        }
      }
    }
    for (size_t d = batch.size(); d-- > 0;) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  std::vector<int64_t> od = batch;
  if (!a1) od.push_back(M);
  if (!b1) od.push_back(N);
  return od;
}

}  // namespace quiver::onnx
