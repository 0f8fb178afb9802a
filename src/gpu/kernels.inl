// The GPU executor's kernels, written once and compiled twice: by nvcc for CUDA (kernels_cuda.cu)
// and by the host compiler for the emulated device (kernels_host.cpp). The including file defines
// QV_HD (function qualifiers) and an executor type X with `static void each(void* queue, int64_t n, F f)`
// that calls f(i) for every i in [0, n). Every kernel is "one element (or one row) per index":
// these ops are memory bound at the sizes HEP models have, and GEMMs go to the vendor library.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "gpu/stream.hpp"

namespace quiver::gpu::kern {

// Layout with 32-bit sizes: used whenever every index fits, because 64-bit integer division costs
// the GPU several times more than 32-bit division and the index math dominates strided kernels.
struct Layout32 {
  using index = int32_t;
  int rank = 0;
  int32_t dims[kMaxRank] = {};
  int32_t stride[3][kMaxRank] = {};
  int32_t mod[kMaxRank] = {};
  int32_t offset[3] = {};
};

inline bool fits32(const Layout& l, int nops, int64_t n) {
  constexpr int64_t kMax = 0x7fffffff;
  if (n > kMax) return false;
  for (int o = 0; o < nops; ++o) {
    int64_t reach = l.offset[o] < 0 ? -l.offset[o] : l.offset[o];
    for (int d = 0; d < l.rank; ++d) {
      const int64_t st = l.stride[o][d] < 0 ? -l.stride[o][d] : l.stride[o][d];
      if (l.dims[d] > kMax || st > kMax) return false;
      reach += (l.dims[d] - 1) * st;
      if (reach > kMax) return false;
    }
  }
  return true;
}

inline Layout32 to32(const Layout& l) {
  Layout32 r;
  r.rank = l.rank;
  for (int d = 0; d < l.rank; ++d) {
    r.dims[d] = static_cast<int32_t>(l.dims[d]);
    r.mod[d] = static_cast<int32_t>(l.mod[d]);
    for (int o = 0; o < 3; ++o) r.stride[o][d] = static_cast<int32_t>(l.stride[o][d]);
  }
  for (int o = 0; o < 3; ++o) r.offset[o] = static_cast<int32_t>(l.offset[o]);
  return r;
}

template <class L>
QV_HD inline void offsets(const L& l, typename L::index i, int nops, typename L::index* off) {
  using I = typename L::index;
  for (int o = 0; o < nops; ++o) off[o] = l.offset[o];
  for (int d = l.rank - 1; d >= 0; --d) {
    const I q = i / l.dims[d];
    const I r = i - q * l.dims[d];
    i = q;
    for (int o = 0; o < nops; ++o) off[o] += r * l.stride[o][d];
  }
}

QV_HD inline float apply_unary(UnaryOp op, float v, float a, float b) {
  switch (op) {
    case UnaryOp::Identity: return v;
    case UnaryOp::Relu: return v > 0.f ? v : 0.f;
    case UnaryOp::LeakyRelu: return v >= 0.f ? v : a * v;
    case UnaryOp::Sigmoid: return v >= 0.f ? 1.f / (1.f + expf(-v)) : expf(v) / (1.f + expf(v));
    case UnaryOp::Tanh: return tanhf(v);
    case UnaryOp::Clip: {  // min first, then max: min > max gives max, as ONNX says
      const float t = v < a ? a : v;
      return t > b ? b : t;
    }
    case UnaryOp::Exp: return expf(v);
    case UnaryOp::Log: return logf(v);
    case UnaryOp::Sqrt: return sqrtf(v);
    case UnaryOp::Neg: return -v;
    case UnaryOp::Abs: return fabsf(v);
    case UnaryOp::Reciprocal: return 1.f / v;
    case UnaryOp::Erf: return erff(v);
    case UnaryOp::Floor: return floorf(v);
    case UnaryOp::Ceil: return ceilf(v);
    case UnaryOp::Sin: return sinf(v);
    case UnaryOp::Cos: return cosf(v);
    case UnaryOp::Elu: return v >= 0.f ? v : a * (expf(v) - 1.f);
    case UnaryOp::HardSigmoid: {
      const float t = a * v + b;
      return t < 0.f ? 0.f : (t > 1.f ? 1.f : t);
    }
    case UnaryOp::Softplus: return v > 20.f ? v : log1pf(expf(v));
    case UnaryOp::Not: return v != 0.f ? 0.f : 1.f;
    case UnaryOp::Sign: return v > 0.f ? 1.f : (v < 0.f ? -1.f : v);  // NaN stays NaN
    case UnaryOp::Atan: return atanf(v);
  }
  return v;
}

template <class T>
QV_HD inline T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div:
      if constexpr (std::is_floating_point_v<T>) return a / b;
      else return b == 0 ? T(0) : T(a / b);  // ONNX leaves it undefined; never trap
    case BinaryOp::Pow:
      if constexpr (std::is_floating_point_v<T>) return powf(a, b);
      else return T(0);  // not dispatched: the op layer sends integer Pow to the CPU
    case BinaryOp::Max: return a > b ? a : b;
    case BinaryOp::Min: return a < b ? a : b;
    case BinaryOp::And: return T((a != 0) && (b != 0));
    case BinaryOp::Or: return T((a != 0) || (b != 0));
    case BinaryOp::Xor: return T((a != 0) != (b != 0));
    default: return T(0);
  }
}

template <class T>
QV_HD inline uint8_t apply_compare(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Equal: return a == b;
    case BinaryOp::Less: return a < b;
    case BinaryOp::LessOrEqual: return a <= b;
    case BinaryOp::Greater: return a > b;
    case BinaryOp::GreaterOrEqual: return a >= b;
    default: return 0;
  }
}

template <class X>
void fill(void* q, void* dst, size_t elsize, uint64_t pattern, int64_t n) {
  switch (elsize) {
    case 1: { auto* d = static_cast<uint8_t*>(dst); const auto v = static_cast<uint8_t>(pattern);
      X::each(q, n, [=] QV_HD(int64_t i) { d[i] = v; }); break; }
    case 2: { auto* d = static_cast<uint16_t*>(dst); const auto v = static_cast<uint16_t>(pattern);
      X::each(q, n, [=] QV_HD(int64_t i) { d[i] = v; }); break; }
    case 4: { auto* d = static_cast<uint32_t*>(dst); const auto v = static_cast<uint32_t>(pattern);
      X::each(q, n, [=] QV_HD(int64_t i) { d[i] = v; }); break; }
    default: { auto* d = static_cast<uint64_t*>(dst); const uint64_t v = pattern;
      X::each(q, n, [=] QV_HD(int64_t i) { d[i] = v; }); break; }
  }
}

template <class X, class T, class L>
void copy_strided_t(void* q, T* dst, const T* src, const L& l, int64_t n) {
  using I = typename L::index;
  X::each(q, n, [=] QV_HD(int64_t i) {
    I od = l.offset[0], os = l.offset[1];
    I rem = static_cast<I>(i);
    for (int d = l.rank - 1; d >= 0; --d) {
      const I qd = rem / l.dims[d];
      const I r = rem - qd * l.dims[d];
      rem = qd;
      od += r * l.stride[0][d];
      os += (l.mod[d] > 0 ? r % l.mod[d] : r) * l.stride[1][d];
    }
    dst[od] = src[os];
  });
}

template <class X, class L>
void copy_strided_l(void* q, void* dst, const void* src, size_t elsize, const L& l, int64_t n) {
  switch (elsize) {
    case 1: copy_strided_t<X>(q, static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), l, n); break;
    case 2: copy_strided_t<X>(q, static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), l, n); break;
    case 4: copy_strided_t<X>(q, static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), l, n); break;
    default: copy_strided_t<X>(q, static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), l, n); break;
  }
}

template <class X>
void copy_strided(void* q, void* dst, const void* src, size_t elsize, const Layout& l, int64_t n) {
  if (fits32(l, 2, n)) copy_strided_l<X>(q, dst, src, elsize, to32(l), n);
  else copy_strided_l<X>(q, dst, src, elsize, l, n);
}

template <class X>
void unary(void* q, UnaryOp op, const void* xv, void* yv, int64_t n, float a, float b) {
  const float* x = static_cast<const float*>(xv);
  float* y = static_cast<float*>(yv);
  X::each(q, n, [=] QV_HD(int64_t i) { y[i] = apply_unary(op, x[i], a, b); });
}

template <class X, class T, class L>
void binary_t(void* q, BinaryOp op, const T* a, const T* b, void* yv, const L& l, int64_t n) {
  using I = typename L::index;
  if (is_comparison(op)) {
    uint8_t* y = static_cast<uint8_t*>(yv);
    X::each(q, n, [=] QV_HD(int64_t i) {
      I off[2];
      offsets(l, static_cast<I>(i), 2, off);
      y[i] = apply_compare<T>(op, a[off[0]], b[off[1]]);
    });
  } else {
    T* y = static_cast<T*>(yv);
    X::each(q, n, [=] QV_HD(int64_t i) {
      I off[2];
      offsets(l, static_cast<I>(i), 2, off);
      y[i] = apply_binary<T>(op, a[off[0]], b[off[1]]);
    });
  }
}

template <class X, class L>
void binary_l(void* q, BinaryOp op, DT dt, const void* a, const void* b, void* y, const L& l, int64_t n) {
  switch (dt) {
    case DT::F32: binary_t<X>(q, op, static_cast<const float*>(a), static_cast<const float*>(b), y, l, n); break;
    case DT::I64: binary_t<X>(q, op, static_cast<const int64_t*>(a), static_cast<const int64_t*>(b), y, l, n); break;
    case DT::I32: binary_t<X>(q, op, static_cast<const int32_t*>(a), static_cast<const int32_t*>(b), y, l, n); break;
    case DT::U8: binary_t<X>(q, op, static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b), y, l, n); break;
  }
}

template <class X>
void binary(void* q, BinaryOp op, DT dt, const void* a, const void* b, void* y, const Layout& l, int64_t n) {
  if (fits32(l, 2, n)) binary_l<X>(q, op, dt, a, b, y, to32(l), n);
  else binary_l<X>(q, op, dt, a, b, y, l, n);
}

template <class X, class T, class L>
void where_t(void* q, const uint8_t* c, const T* x, const T* y, T* out, const L& l, int64_t n) {
  using I = typename L::index;
  X::each(q, n, [=] QV_HD(int64_t i) {
    I off[3];
    offsets(l, static_cast<I>(i), 3, off);
    out[i] = c[off[0]] ? x[off[1]] : y[off[2]];
  });
}

template <class X, class L>
void where_l(void* q, const void* c, const void* x, const void* y, void* out, size_t elsize, const L& l, int64_t n) {
  const auto* cc = static_cast<const uint8_t*>(c);
  switch (elsize) {
    case 1: where_t<X>(q, cc, static_cast<const uint8_t*>(x), static_cast<const uint8_t*>(y), static_cast<uint8_t*>(out), l, n); break;
    case 2: where_t<X>(q, cc, static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(y), static_cast<uint16_t*>(out), l, n); break;
    case 4: where_t<X>(q, cc, static_cast<const uint32_t*>(x), static_cast<const uint32_t*>(y), static_cast<uint32_t*>(out), l, n); break;
    default: where_t<X>(q, cc, static_cast<const uint64_t*>(x), static_cast<const uint64_t*>(y), static_cast<uint64_t*>(out), l, n); break;
  }
}

template <class X>
void where(void* q, const void* c, const void* x, const void* y, void* out, size_t elsize, const Layout& l, int64_t n) {
  if (fits32(l, 3, n)) where_l<X>(q, c, x, y, out, elsize, to32(l), n);
  else where_l<X>(q, c, x, y, out, elsize, l, n);
}

template <class D, class S>
QV_HD inline D convert(S v) {
  if constexpr (std::is_same_v<D, uint8_t>) return v != S(0) ? 1 : 0;  // bool
  else return static_cast<D>(v);
}

template <class X, class S, class D>
void cast_t(void* q, const S* x, D* y, int64_t n) {
  X::each(q, n, [=] QV_HD(int64_t i) { y[i] = convert<D, S>(x[i]); });
}

template <class X, class S>
void cast_from(void* q, const S* x, DT to, void* y, int64_t n) {
  switch (to) {
    case DT::F32: cast_t<X>(q, x, static_cast<float*>(y), n); break;
    case DT::I64: cast_t<X>(q, x, static_cast<int64_t*>(y), n); break;
    case DT::I32: cast_t<X>(q, x, static_cast<int32_t*>(y), n); break;
    case DT::U8: cast_t<X>(q, x, static_cast<uint8_t*>(y), n); break;
  }
}

template <class X>
void cast(void* q, DT from, DT to, const void* x, void* y, int64_t n) {
  switch (from) {
    case DT::F32: cast_from<X>(q, static_cast<const float*>(x), to, y, n); break;
    case DT::I64: cast_from<X>(q, static_cast<const int64_t*>(x), to, y, n); break;
    case DT::I32: cast_from<X>(q, static_cast<const int32_t*>(x), to, y, n); break;
    case DT::U8: cast_from<X>(q, static_cast<const uint8_t*>(x), to, y, n); break;
  }
}

template <class X, class L>
void reduce_l(void* q, ReduceOp op, const void* xv, void* yv, const L& keep, const L& red, int64_t out_n,
              int64_t red_n) {
  using I = typename L::index;
  const float* x = static_cast<const float*>(xv);
  float* y = static_cast<float*>(yv);
  X::each(q, out_n, [=] QV_HD(int64_t o) {
    I base;
    offsets(keep, static_cast<I>(o), 1, &base);
    float acc = op == ReduceOp::Prod ? 1.f : (op == ReduceOp::Max ? -INFINITY : (op == ReduceOp::Min ? INFINITY : 0.f));
    for (I r = 0; r < static_cast<I>(red_n); ++r) {
      I off;
      offsets(red, r, 1, &off);
      const float v = x[base + off];
      switch (op) {
        case ReduceOp::Sum: case ReduceOp::Mean: acc += v; break;
        case ReduceOp::Max: acc = v > acc ? v : acc; break;
        case ReduceOp::Min: acc = v < acc ? v : acc; break;
        case ReduceOp::Prod: acc *= v; break;
        case ReduceOp::SumSquare: case ReduceOp::L2: acc += v * v; break;
        case ReduceOp::L1: acc += fabsf(v); break;
      }
    }
    if (op == ReduceOp::Mean) acc = red_n > 0 ? acc / float(red_n) : NAN;
    if (op == ReduceOp::L2) acc = sqrtf(acc);
    y[o] = acc;
  });
}

template <class X>
void reduce(void* q, ReduceOp op, const void* x, void* y, const Layout& keep, const Layout& red, int64_t out_n,
            int64_t red_n) {
  // The two reaches add up: each must leave room for the other.
  if (fits32(keep, 1, out_n) && fits32(red, 1, red_n) && keep.rank + red.rank > 0 && out_n * red_n < 0x3fffffff)
    reduce_l<X>(q, op, x, y, to32(keep), to32(red), out_n, red_n);
  else
    reduce_l<X>(q, op, x, y, keep, red, out_n, red_n);
}

template <class X>
void softmax(void* q, const void* xv, void* yv, int64_t outer, int64_t len, int64_t inner, bool lg) {
  const float* x = static_cast<const float*>(xv);
  float* y = static_cast<float*>(yv);
  X::each(q, outer * inner, [=] QV_HD(int64_t r) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    float m = -INFINITY;
    for (int64_t j = 0; j < len; ++j) m = x[base + j * inner] > m ? x[base + j * inner] : m;
    float s = 0.f;
    for (int64_t j = 0; j < len; ++j) s += expf(x[base + j * inner] - m);
    const float ls = logf(s);
    for (int64_t j = 0; j < len; ++j) {
      const float v = x[base + j * inner] - m;
      y[base + j * inner] = lg ? v - ls : expf(v) / s;
    }
  });
}

template <class X>
void topk(void* q, const void* xv, void* vv, void* iv, int64_t outer, int64_t len, int64_t inner, int64_t k,
          bool largest) {
  const float* x = static_cast<const float*>(xv);
  float* vals = static_cast<float*>(vv);
  int64_t* idx = static_cast<int64_t*>(iv);
  X::each(q, outer * inner, [=] QV_HD(int64_t r) {
    const int64_t o = r / inner, in = r % inner;
    const int64_t xb = o * len * inner + in, ob = o * k * inner + in;
    int64_t count = 0;
    for (int64_t j = 0; j < len; ++j) {
      const float v = x[xb + j * inner];
      // strictly better than the entry at p: equal values keep the lower index first
      int64_t p = count < k ? count : k;
      if (p == k) {
        const float w = vals[ob + (k - 1) * inner];
        if (!(largest ? v > w : v < w)) continue;
        p = k - 1;
      } else {
        ++count;
      }
      while (p > 0) {
        const float w = vals[ob + (p - 1) * inner];
        if (!(largest ? v > w : v < w)) break;
        vals[ob + p * inner] = w;
        idx[ob + p * inner] = idx[ob + (p - 1) * inner];
        --p;
      }
      vals[ob + p * inner] = v;
      idx[ob + p * inner] = j;
    }
  });
}

QV_HD inline void flag_error(int32_t* err, int32_t code) {
#ifdef __CUDA_ARCH__
  atomicCAS(err, 0, code);
#else
  if (*err == 0) *err = code;
#endif
}

template <class X, class T, class I>
void gather_t(void* q, const T* data, const void* idxv, bool idx32, T* out, I axis_len, I inner, I nidx, int64_t n,
              int32_t* err, int32_t code) {
  const int64_t* i64 = static_cast<const int64_t*>(idxv);
  const int32_t* i32 = static_cast<const int32_t*>(idxv);
  X::each(q, n, [=] QV_HD(int64_t ii) {
    const I i = static_cast<I>(ii);
    const I in = i % inner;
    const I t = i / inner;
    const I j = t % nidx, o = t / nidx;
    int64_t k = idx32 ? int64_t(i32[j]) : i64[j];
    if (k < 0) k += axis_len;
    if (k < 0 || k >= axis_len) {
      flag_error(err, code);
      out[i] = T(0);
      return;
    }
    out[i] = data[(o * axis_len + static_cast<I>(k)) * inner + in];
  });
}

template <class X, class I>
void gather_i(void* q, const void* data, const void* idx, bool idx32, void* out, size_t elsize, I axis_len, I inner,
              I nidx, int64_t n, int32_t* err, int32_t code) {
  switch (elsize) {
    case 1: gather_t<X>(q, static_cast<const uint8_t*>(data), idx, idx32, static_cast<uint8_t*>(out), axis_len, inner, nidx, n, err, code); break;
    case 2: gather_t<X>(q, static_cast<const uint16_t*>(data), idx, idx32, static_cast<uint16_t*>(out), axis_len, inner, nidx, n, err, code); break;
    case 4: gather_t<X>(q, static_cast<const uint32_t*>(data), idx, idx32, static_cast<uint32_t*>(out), axis_len, inner, nidx, n, err, code); break;
    default: gather_t<X>(q, static_cast<const uint64_t*>(data), idx, idx32, static_cast<uint64_t*>(out), axis_len, inner, nidx, n, err, code); break;
  }
}

template <class X>
void gather(void* q, const void* data, const void* idx, bool idx32, void* out, size_t elsize, int64_t outer,
            int64_t axis_len, int64_t inner, int64_t nidx, int32_t* err, int32_t code) {
  const int64_t n = outer * nidx * inner;
  if (n < 0x7fffffff && outer * axis_len * inner < 0x7fffffff)
    gather_i<X, int32_t>(q, data, idx, idx32, out, elsize, static_cast<int32_t>(axis_len), static_cast<int32_t>(inner),
                         static_cast<int32_t>(nidx), n, err, code);
  else
    gather_i<X, int64_t>(q, data, idx, idx32, out, elsize, axis_len, inner, nidx, n, err, code);
}

template <class X>
void channel_op(void* q, const void* xv, void* yv, const void* sv, const void* hv, int64_t outer, int64_t C,
                int64_t inner, UnaryOp act, float a, float b) {
  const float* x = static_cast<const float*>(xv);
  float* y = static_cast<float*>(yv);
  const float* scale = static_cast<const float*>(sv);
  const float* shift = static_cast<const float*>(hv);
  const bool small = outer * C * inner < 0x7fffffff;
  const int32_t inner32 = static_cast<int32_t>(inner), c32 = static_cast<int32_t>(C);
  X::each(q, outer * C * inner, [=] QV_HD(int64_t i) {
    const int64_t c = small ? (static_cast<int32_t>(i) / inner32) % c32 : (i / inner) % C;
    float v = x[i];
    if (scale) v *= scale[c];
    if (shift) v += shift[c];
    y[i] = apply_unary(act, v, a, b);
  });
}

template <class X>
void im2col(void* q, const void* xv, void* colv, const ConvGeom& g) {
  const float* x = static_cast<const float*>(xv);
  float* col = static_cast<float*>(colv);
  const int64_t kprod = g.k[0] * g.k[1] * g.k[2], oprod = g.out[0] * g.out[1] * g.out[2];
  const int64_t iprod = g.in[0] * g.in[1] * g.in[2];
  X::each(q, g.N * g.C * kprod * oprod, [=] QV_HD(int64_t i) {
    int64_t o = i % oprod;
    int64_t t = i / oprod;
    int64_t kk = t % kprod;
    t /= kprod;  // n * C + c
    int64_t off = 0;
    bool inside = true;
    for (int d = 2; d >= 0; --d) {  // unused dims have size 1
      const int64_t od = o % g.out[d], kd = kk % g.k[d];
      o /= g.out[d];
      kk /= g.k[d];
      const int64_t p = od * g.stride[d] - g.pad[d] + kd * g.dil[d];
      inside = inside && p >= 0 && p < g.in[d];
      int64_t scale = 1;
      for (int e = d + 1; e < 3; ++e) scale *= g.in[e];
      off += p * scale;
    }
    col[i] = inside ? x[t * iprod + off] : 0.f;
  });
}

template <class X>
void lstm_gates(void* q, const void* gv, const void* bv, const void* pv, void* cv, void* hv, int64_t B, int64_t H) {
  const float* g = static_cast<const float*>(gv);
  const float* bias = static_cast<const float*>(bv);
  const float* p = static_cast<const float*>(pv);
  float* c = static_cast<float*>(cv);
  float* h = static_cast<float*>(hv);
  X::each(q, B * H, [=] QV_HD(int64_t i) {
    const int64_t b = i / H, k = i % H;
    const float* gr = g + b * 4 * H;
    auto gate = [&](int j) { return gr[j * H + k] + (bias ? bias[j * H + k] + bias[(4 + j) * H + k] : 0.f); };
    const float c_prev = c[i];
    auto sigmoid = [](float v) { return apply_unary(UnaryOp::Sigmoid, v, 0.f, 0.f); };
    const float it = sigmoid(gate(0) + (p ? p[k] * c_prev : 0.f));
    const float ft = sigmoid(gate(2) + (p ? p[2 * H + k] * c_prev : 0.f));
    const float ct = tanhf(gate(3));
    const float c_new = ft * c_prev + it * ct;
    const float ot = sigmoid(gate(1) + (p ? p[H + k] * c_new : 0.f));
    c[i] = c_new;
    h[i] = ot * tanhf(c_new);
  });
}

template <class X>
void gru_zr(void* q, void* gv, const void* bv, int64_t B, int64_t H, UnaryOp f, float fa, float fb) {
  float* g = static_cast<float*>(gv);
  const float* bias = static_cast<const float*>(bv);
  X::each(q, B * 2 * H, [=] QV_HD(int64_t i) {
    const int64_t b = i / (2 * H), k = i % (2 * H);
    float& v = g[b * 3 * H + k];
    v = apply_unary(f, v + (bias ? bias[k] + bias[3 * H + k] : 0.f), fa, fb);
  });
}

template <class X>
void gru_rh(void* q, const void* gv, const void* hv, void* rv, int64_t B, int64_t H) {
  const float* g = static_cast<const float*>(gv);
  const float* hp = static_cast<const float*>(hv);
  float* rh = static_cast<float*>(rv);
  X::each(q, B * H, [=] QV_HD(int64_t i) { rh[i] = g[(i / H) * 3 * H + H + i % H] * hp[i]; });
}

template <class X>
void gru_h(void* q, const void* gv, const void* bv, const void* recv, const void* hv, void* outv, int64_t B,
           int64_t H) {
  const float* g = static_cast<const float*>(gv);
  const float* bias = static_cast<const float*>(bv);
  const float* rec = static_cast<const float*>(recv);
  const float* hp = static_cast<const float*>(hv);
  float* h = static_cast<float*>(outv);
  X::each(q, B * H, [=] QV_HD(int64_t i) {
    const int64_t b = i / H, k = i % H;
    const float* gr = g + b * 3 * H;
    const float z = gr[k], r = gr[H + k];
    const float rb = bias ? bias[5 * H + k] : 0.f;
    float pre = gr[2 * H + k] + (bias ? bias[2 * H + k] : 0.f);
    pre += rec ? r * (rec[i] + rb) : rb;
    h[i] = (1.f - z) * tanhf(pre) + z * hp[i];
  });
}

// The kernel half of a Stream; the including file adds memory, sync and GEMM.
template <class X>
class KernelStream : public Stream {
 public:
  void fill(void* dst, size_t elsize, uint64_t pattern, int64_t n) override { kern::fill<X>(queue(), dst, elsize, pattern, n); }
  void copy_strided(void* dst, const void* src, size_t elsize, const Layout& l, int64_t n) override {
    kern::copy_strided<X>(queue(), dst, src, elsize, l, n);
  }
  void unary(UnaryOp op, const void* x, void* y, int64_t n, float alpha, float beta) override {
    kern::unary<X>(queue(), op, x, y, n, alpha, beta);
  }
  void binary(BinaryOp op, DT dt, const void* a, const void* b, void* y, const Layout& l, int64_t n) override {
    kern::binary<X>(queue(), op, dt, a, b, y, l, n);
  }
  void where(const void* c, const void* x, const void* y, void* out, size_t elsize, const Layout& l, int64_t n) override {
    kern::where<X>(queue(), c, x, y, out, elsize, l, n);
  }
  void cast(DT from, DT to, const void* x, void* y, int64_t n) override { kern::cast<X>(queue(), from, to, x, y, n); }
  void reduce(ReduceOp op, const void* x, void* y, const Layout& keep, const Layout& red, int64_t out_n,
              int64_t red_n) override {
    kern::reduce<X>(queue(), op, x, y, keep, red, out_n, red_n);
  }
  void softmax(const void* x, void* y, int64_t outer, int64_t len, int64_t inner, bool lg) override {
    kern::softmax<X>(queue(), x, y, outer, len, inner, lg);
  }
  void topk(const void* x, void* vals, void* idx, int64_t outer, int64_t len, int64_t inner, int64_t k,
            bool largest) override {
    kern::topk<X>(queue(), x, vals, idx, outer, len, inner, k, largest);
  }
  void gather(const void* data, const void* idx, bool idx32, void* out, size_t elsize, int64_t outer, int64_t axis_len,
              int64_t inner, int64_t nidx, int32_t* err, int32_t code) override {
    kern::gather<X>(queue(), data, idx, idx32, out, elsize, outer, axis_len, inner, nidx, err, code);
  }
  void im2col(const void* x, void* col, const ConvGeom& g) override { kern::im2col<X>(queue(), x, col, g); }
  void lstm_gates(const void* g, const void* bias, const void* p, void* c, void* h, int64_t B, int64_t H) override {
    kern::lstm_gates<X>(queue(), g, bias, p, c, h, B, H);
  }
  void gru_zr(void* g, const void* bias, int64_t B, int64_t H, UnaryOp f, float alpha, float beta) override {
    kern::gru_zr<X>(queue(), g, bias, B, H, f, alpha, beta);
  }
  void gru_rh(const void* g, const void* h_prev, void* rh, int64_t B, int64_t H) override {
    kern::gru_rh<X>(queue(), g, h_prev, rh, B, H);
  }
  void gru_h(const void* g, const void* bias, const void* rec, const void* h_prev, void* h, int64_t B,
             int64_t H) override {
    kern::gru_h<X>(queue(), g, bias, rec, h_prev, h, B, H);
  }
  void channel_op(const void* x, void* y, const void* scale, const void* shift, int64_t outer, int64_t C, int64_t inner,
                  UnaryOp act, float alpha, float beta) override {
    kern::channel_op<X>(queue(), x, y, scale, shift, outer, C, inner, act, alpha, beta);
  }

 protected:
  virtual void* queue() const = 0;
};

}  // namespace quiver::gpu::kern
