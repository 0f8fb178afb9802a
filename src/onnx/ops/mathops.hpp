// Helpers shared by the elementwise math / compare / logical / variadic / reduction operator files
// (Atan, Cast, Clip, Pow, Max, Where, Reduce*, ...). Builds on common.hpp.
#pragma once
#include <array>
#include <charconv>
#include <limits>
#include <string>

#include "onnx/numerics.hpp"
#include "onnx/ops/common.hpp"
#include "onnx/ops/unary.hpp"

namespace quiver::onnx {

inline bool is_half_dtype(DType t) { return t == DType::F16 || t == DType::BF16; }

template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

inline std::string dt_str(DType t) { return std::string(dtype_name(t)); }

// Calls f(TypeTag<T>) for numeric dtypes including F16/BF16 (not bool/string).
template <class F>
decltype(auto) visit_numeric_half(DType dt, F&& f) {
  if (dt == DType::F16) return f(TypeTag<Half>{});
  if (dt == DType::BF16) return f(TypeTag<BFloat16>{});
  return visit_numeric(dt, std::forward<F>(f));
}

// Type the arithmetic is done in: float for F16/BF16, T otherwise.
template <class T> struct compute_type { using type = T; };
template <> struct compute_type<Half> { using type = float; };
template <> struct compute_type<BFloat16> { using type = float; };
template <class T> using compute_t = typename compute_type<T>::type;

template <class T> inline compute_t<T> to_compute(T v) {
  if constexpr (is_half_v<T>) return static_cast<float>(v);
  else return v;
}
template <class T, class C> inline T from_compute(C v) {
  if constexpr (is_half_v<T>) return T(static_cast<float>(v));
  else return static_cast<T>(v);
}

// Output dims of broadcasting several shapes together; false when incompatible.
inline bool broadcast_many(const std::vector<const std::vector<int64_t>*>& shapes, std::vector<int64_t>& out) {
  out.clear();
  for (const auto* s : shapes) {
    std::vector<int64_t> tmp;
    if (!broadcast_dims(out, *s, tmp)) return false;
    out.swap(tmp);
  }
  return true;
}

inline std::optional<std::vector<int64_t>> broadcast_static_many(const BuildContext& ctx, size_t first = 0) {
  std::optional<std::vector<int64_t>> s = std::vector<int64_t>{};
  for (size_t i = first; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    s = broadcast_static(s, ctx.input(i).shape);
  }
  return s;
}

// Iterates the output of an N-input broadcast; calls f(out_index, offsets) with each input's element
// offset. Rank up to 16.
template <size_t N, class F>
void broadcast_iterate(std::span<const int64_t> od, const std::array<const std::vector<int64_t>*, N>& in, F&& f) {
  const size_t r = od.size();
  const int64_t n = product(od);
  if (n == 0) return;
  if (r > 16) throw_error(ErrorCode::Unsupported, "broadcast of rank > 16");
  int64_t st[N][16];
  for (size_t k = 0; k < N; ++k) broadcast_strides(*in[k], od, st[k]);
  int64_t idx[16] = {0};
  std::array<int64_t, N> off{};
  if (r == 0) { f(int64_t{0}, off); return; }
  const int64_t inner = od[r - 1];
  for (int64_t o = 0; o < n; o += inner) {
    std::array<int64_t, N> cur = off;
    for (int64_t i = 0; i < inner; ++i) {
      f(o + i, cur);
      for (size_t k = 0; k < N; ++k) cur[k] += st[k][r - 1];
    }
    for (size_t d = r - 1; d-- > 0;) {
      if (++idx[d] < od[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += st[k][d];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= st[k][d] * (od[d] - 1);
      idx[d] = 0;
    }
  }
}

// Elementwise op with a bool result: out = pred(x). Float types (and optionally integers).
template <class MakeP>
KernelBuilder predicate_builder(MakeP make_p, bool allow_int = false) {
  return [make_p, allow_int](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(1, 1);
    const DType t = ctx.input_dtype(0);
    if (!dtype_is_float(t) && !(allow_int && dtype_is_integer(t)))
      ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
    ctx.set_output(0, DType::Bool, ctx.input(0).shape);
    auto p = make_p(ctx);
    return make_kernel([p, t](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      Tensor& y = ec.output(0, DType::Bool, x.dims());
      const int64_t n = x.numel();
      bool* py = y.data<bool>();
      visit_numeric_half(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* px = x.data<T>();
        for (int64_t i = 0; i < n; ++i) py[i] = p(to_compute(px[i]));
      });
    });
  };
}

// Binary op over integer types only (bitwise), same dtype in and out.
template <class F>
KernelBuilder int_binary_builder(F f, bool unsigned_only = false) {
  return [f, unsigned_only](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(2, 2);
    const DType t = ctx.input_dtype(0);
    if (ctx.input_dtype(1) != t) ctx.fail("input dtypes differ: " + dt_str(t) + " vs " + dt_str(ctx.input_dtype(1)));
    if (!dtype_is_integer(t) || (unsigned_only && dtype_is_signed(t)))
      ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
    ctx.set_output(0, t, broadcast_static(ctx.input(0).shape, ctx.input(1).shape));
    return make_kernel([f, t](ExecContext& ec) {
      const Tensor& a = ec.input(0);
      const Tensor& b = ec.input(1);
      std::vector<int64_t> od;
      if (!broadcast_dims(a.dims(), b.dims(), od))
        ec.fail("shapes " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()) + " cannot be broadcast");
      Tensor& out = ec.output(0, t, od);
      visit_numeric(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        if constexpr (std::is_integral_v<T>)
          broadcast_binary<T, T, T>(a, b, out, [&](T x, T y) { return static_cast<T>(f(x, y)); });
      });
    });
  };
}

// Binary op over bool tensors -> bool.
template <class F>
KernelBuilder bool_binary_builder(F f) {
  return [f](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(2, 2);
    if (ctx.input_dtype(0) != DType::Bool || ctx.input_dtype(1) != DType::Bool)
      ctx.fail("inputs must be bool, got " + dt_str(ctx.input_dtype(0)) + " and " + dt_str(ctx.input_dtype(1)));
    ctx.set_output(0, DType::Bool, broadcast_static(ctx.input(0).shape, ctx.input(1).shape));
    return make_kernel([f](ExecContext& ec) {
      const Tensor& a = ec.input(0);
      const Tensor& b = ec.input(1);
      std::vector<int64_t> od;
      if (!broadcast_dims(a.dims(), b.dims(), od))
        ec.fail("shapes " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()) + " cannot be broadcast");
      Tensor& out = ec.output(0, DType::Bool, od);
      broadcast_binary<bool, bool, bool>(a, b, out, [&](bool x, bool y) { return f(x, y); });
    });
  };
}

// Variadic elementwise op with broadcasting (Max, Min, Sum, Mean). `f(acc, x)` in compute type;
// `finish(acc, count)` post-processes (Mean). Output dtype = input dtype.
template <class F, class Fin>
KernelBuilder variadic_builder(F f, Fin finish, bool allow_int) {
  return [f, finish, allow_int](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    if (ctx.num_inputs() < 1) ctx.fail("needs at least one input");
    const DType t = ctx.input_dtype(0);
    for (size_t i = 1; i < ctx.num_inputs(); ++i)
      if (ctx.input_dtype(i) != t)
        ctx.fail("input dtypes differ: " + dt_str(t) + " vs " + dt_str(ctx.input_dtype(i)), ctx.input_name(i));
    if (!(dtype_is_float(t) || (allow_int && dtype_is_integer(t))))
      ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
    ctx.set_output(0, t, broadcast_static_many(ctx));
    return make_kernel([f, finish, t](ExecContext& ec) {
      const size_t m = ec.num_inputs();
      std::vector<const std::vector<int64_t>*> shapes;
      for (size_t i = 0; i < m; ++i) shapes.push_back(&ec.input(i).dims());
      std::vector<int64_t> od;
      if (!broadcast_many(shapes, od)) ec.fail("input shapes cannot be broadcast together");
      Tensor& out = ec.output(0, t, od);
      const int64_t n = out.numel();
      visit_numeric_half(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* po = out.data<T>();
        // out = broadcast(in0)
        const Tensor& x0 = ec.input(0);
        if (x0.numel() == n) {
          std::copy_n(x0.data<T>(), n, po);
        } else {
          const T* p0 = x0.data<T>();
          broadcast_iterate<1>(od, {&x0.dims()}, [&](int64_t o, const std::array<int64_t, 1>& off) { po[o] = p0[off[0]]; });
        }
        for (size_t i = 1; i < m; ++i) {
          const Tensor& x = ec.input(i);
          broadcast_binary<T, T, T>(out, x, out, [&](T a, T b) { return from_compute<T>(f(to_compute(a), to_compute(b))); });
        }
        if constexpr (!std::is_same_v<Fin, std::nullptr_t>)
          for (int64_t j = 0; j < n; ++j) po[j] = from_compute<T>(finish(to_compute(po[j]), static_cast<int64_t>(m)));
      });
    });
  };
}

// erf for float as a rational approximation on [-4, 4] (erf(+-4) rounds to +-1 in float); max error
// about 4e-7 (3 ulp), and unlike std::erf the loop over it vectorises. NaN propagates.
inline float fast_erf(float a) {
  const float x = std::max(-4.f, std::min(a, 4.f));
  const float x2 = x * x;
  float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = x2 * p + -2.10102402082508e-06f;
  p = x2 * p + -5.69250639462346e-05f;
  p = x2 * p + -7.34990630326855e-04f;
  p = x2 * p + -2.95459980854025e-03f;
  p = x2 * p + -1.60960333262415e-02f;
  p = x * p;
  float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
  q = x2 * q + -1.68282697438203e-03f;
  q = x2 * q + -7.37332916720468e-03f;
  q = x2 * q + -1.42647390514189e-02f;
  const float r = p / q;
  return a == a ? r : a;
}

// Unary op with a separate vectorisable float path: `ff(const float*, float*, n)` for F32 (and F16/BF16
// through a float buffer), `fd(double)` for F64.
template <class FF, class FD>
KernelBuilder float_unary_builder(FF ff, FD fd) {
  return [ff, fd](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(1, 1);
    const DType t = ctx.input_dtype(0);
    if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
    ctx.set_output(0, t, ctx.input(0).shape);
    return make_kernel([ff, fd, t](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      Tensor& y = ec.output(0, t, x.dims());
      const int64_t n = x.numel();
      if (t == DType::F32) {
        ff(x.data<float>(), y.data<float>(), n);
      } else if (t == DType::F64) {
        const double* px = x.data<double>();
        double* py = y.data<double>();
        for (int64_t i = 0; i < n; ++i) py[i] = fd(px[i]);
      } else {
        float* buf = static_cast<float*>(ec.scratch(static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float)));
        visit_numeric_half(t, [&](auto tag) {
          using T = typename decltype(tag)::type;
          if constexpr (is_half_v<T>) {
            const T* px = x.data<T>();
            T* py = y.data<T>();
            for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<float>(px[i]);
            ff(buf, buf, n);
            for (int64_t i = 0; i < n; ++i) py[i] = T(buf[i]);
          }
        });
      }
    });
  };
}

// A unary float op with a reproducible variant (numerics=reproducible): `def` builds the default
// kernel; in reproducible mode the ISA table's `fn` runs float32 (float16/bfloat16 through a float
// buffer); float64 has no reproducible kernel and is refused at load.
using FloatArrayFn = void (*)(const float*, float*, int64_t);
inline KernelBuilder repro_unary(KernelBuilder def, FloatArrayFn repro::Kernels::*fn) {
  return [def, fn](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    if (!ctx.target().reproducible()) return def(ctx);
    ctx.expect_inputs(1, 1);
    const DType t = ctx.input_dtype(0);
    if (t != DType::F32 && !is_half_dtype(t))
      ctx.fail("no reproducible kernel for " + ctx.op_type() + " of " + dt_str(t), ctx.input_name(0),
               ErrorCode::Unsupported);
    return float_unary_builder(repro_kernels(ctx.target()).*fn, [](double x) { return x; })(ctx);
  };
}

// Number formatting / parsing for Cast to and from string.
template <class T>
inline std::string number_to_string(T v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "1" : "0";
  } else if constexpr (is_half_v<T>) {
    return number_to_string(static_cast<float>(v));
  } else if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "INF" : "-INF";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  } else {
    return std::to_string(v);
  }
}

// Parses a string as a number of type T (case-insensitive "nan", "inf", "+inf", "-inf", "infinity").
// Returns false when the text is not a number.
template <class T>
inline bool string_to_number(const std::string& s, T& out) {
  std::string l;
  for (char c : s) l.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  while (!l.empty() && std::isspace(static_cast<unsigned char>(l.back()))) l.pop_back();
  size_t b = 0;
  while (b < l.size() && std::isspace(static_cast<unsigned char>(l[b]))) ++b;
  l = l.substr(b);
  if (l.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double d = std::strtod(l.c_str(), &end);
  if (end == l.c_str() || *end != '\0') return false;
  if constexpr (std::is_same_v<T, bool>) {
    out = d != 0;
  } else if constexpr (is_half_v<T>) {
    out = T(static_cast<float>(d));
  } else if constexpr (std::is_floating_point_v<T>) {
    if constexpr (std::is_same_v<T, float>) out = std::strtof(l.c_str(), nullptr);
    else out = static_cast<T>(d);
  } else if constexpr (std::is_signed_v<T>) {
    const long long v = std::strtoll(l.c_str(), &end, 10);
    if (*end != '\0') out = static_cast<T>(d);  // e.g. "1e3" or "2.5"
    else out = static_cast<T>(v);
  } else {
    const unsigned long long v = std::strtoull(l.c_str(), &end, 10);
    if (*end != '\0') out = static_cast<T>(d);
    else out = static_cast<T>(v);
  }
  return true;
}

// One value converted between element types. Float -> integer is undefined in C++ for NaN and
// out-of-range values (ONNX leaves it unspecified): we map NaN to 0 and saturate, so it never traps.
template <class D, class S>
inline D convert_value(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, bool>) {
    if constexpr (is_half_v<S>) return static_cast<float>(v) != 0.f;
    else return v != S(0);
  } else if constexpr (is_half_v<D>) {
    if constexpr (is_half_v<S>) return D(static_cast<float>(v));
    else return D(static_cast<float>(v));
  } else if constexpr (is_half_v<S>) {
    return convert_value<D>(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<D> && std::is_floating_point_v<S>) {
    if (std::isnan(v)) return D(0);
    if (v <= static_cast<S>(std::numeric_limits<D>::lowest())) return std::numeric_limits<D>::lowest();
    if (v >= static_cast<S>(std::numeric_limits<D>::max())) return std::numeric_limits<D>::max();
    return static_cast<D>(v);
  } else {
    return static_cast<D>(v);
  }
}

// Elementwise conversion of n values from `src` (dtype sd) to `dst` (dtype dd); all Quiver dtypes
// including strings.
inline void convert_elements(DType sd, const void* src, DType dd, void* dst, int64_t n) {
  visit_dtype(sd, [&](auto stag) {
    using S = typename decltype(stag)::type;
    const S* ps = static_cast<const S*>(src);
    visit_dtype(dd, [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      D* pd = static_cast<D*>(dst);
      if constexpr (std::is_same_v<S, std::string> && std::is_same_v<D, std::string>) {
        for (int64_t i = 0; i < n; ++i) pd[i] = ps[i];
      } else if constexpr (std::is_same_v<D, std::string>) {
        for (int64_t i = 0; i < n; ++i) pd[i] = number_to_string(ps[i]);
      } else if constexpr (std::is_same_v<S, std::string>) {
        for (int64_t i = 0; i < n; ++i) {
          D v{};
          if (!string_to_number(ps[i], v))
            throw_error(ErrorCode::InvalidArgument, "cannot convert string '" + ps[i] + "' to " + dt_str(dd));
          pd[i] = v;
        }
      } else if constexpr (std::is_same_v<S, D>) {
        std::memcpy(pd, ps, static_cast<size_t>(n) * sizeof(S));
      } else {
        for (int64_t i = 0; i < n; ++i) pd[i] = convert_value<D>(ps[i]);
      }
    });
  });
}

// Cast's kernel and emitter (src/onnx/ops/cast.cpp): `from` elements to `dst`; CastLike uses both.
std::unique_ptr<Kernel> cast_kernel(DType from, DType dst);
class Emit;
void emit_cast(Emit& e);

}  // namespace quiver::onnx
