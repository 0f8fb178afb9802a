// Pow(X, Y): X ** Y with broadcasting; the output has X's type, Y may be of another numeric type.
// Integer ** integer is exact (repeated squaring, wrapping like numpy); anything involving floats is
// computed in double (float for F16/BF16 bases). A constant scalar exponent of 1, 2, 3, 0.5 or -1 gets
// a fast path (x*x for the common Pow(x, 2)).
#include "onnx/ops/mathops.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
namespace {

template <class T, class E>
T int_pow(T base, E e) {
  if (e < E(0)) {
    // numpy refuses negative integer powers; give the value the real power truncates to.
    if (base == T(1)) return T(1);
    if constexpr (std::is_signed_v<T>)
      if (base == T(-1)) return (static_cast<int64_t>(e) & 1) ? T(-1) : T(1);
    return T(0);
  }
  using U = std::make_unsigned_t<T>;
  U result = 1, b = static_cast<U>(base);
  uint64_t n = static_cast<uint64_t>(e);
  while (n) {
    if (n & 1) result = static_cast<U>(result * b);
    b = static_cast<U>(b * b);
    n >>= 1;
  }
  return static_cast<T>(result);
}

template <class T, class E>
T pow_value(T x, E y) {
  if constexpr (std::is_integral_v<T> && std::is_integral_v<E>) {
    return int_pow(x, y);
  } else {
    using C = std::conditional_t<is_half_v<T>, float, double>;
    const C r = std::pow(static_cast<C>(to_compute(x)), static_cast<C>(to_compute(y)));
    if constexpr (is_half_v<T>) return T(static_cast<float>(r));
    else return convert_value<T>(r);
  }
}

enum class Fast { None, One, Square, Cube, Sqrt, Recip };

}  // namespace

// quiver compile: float ** float in double as the engine computes it; x*x for a constant exponent 2.
void emit_pow(Emit& e) {
  if (e.in(0).dtype != DType::F32 || e.in(1).dtype != DType::F32) e.refuse("Pow is emitted for float only");
  const auto& c = e.in(1).constant;
  if (e.reproducible()) {
    // The kernel's fast paths (the only float powers it runs reproducibly; it refuses the rest).
    const double x = c && c->numel() == 1 ? static_cast<double>(c->data<float>()[0]) : 0.0;
    const char* expr = !c || c->numel() != 1 ? nullptr
                       : x == 1 ? "v" : x == 2 ? "v * v" : x == 3 ? "v * v * v" : x == 0.5 ? "std::sqrt(v)" : x == -1 ? "1.0f / v" : nullptr;
    if (!expr) e.refuse("no reproducible Pow for this exponent");
    emit_unary(expr, {DType::F32})(e);
    e.dims_only(1);
    e.bitwise();
    return;
  }
  if (c && c->numel() == 1 && c->data<float>()[0] == 2.0f) {
    emit_unary("v * v")(e);
    e.dims_only(1);
    return;
  }
  emit_binary("static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)))", {DType::F32})(e);
}

QUIVER_REGISTER_OPS(pow) {
  registry.add({"", "Pow", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  const DType t = ctx.input_dtype(0), te = ctx.input_dtype(1);
                  const auto numeric = [](DType d) { return dtype_is_float(d) || dtype_is_integer(d); };
                  if (!numeric(t)) ctx.fail("unsupported base dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  if (!numeric(te)) ctx.fail("unsupported exponent dtype " + dt_str(te), ctx.input_name(1), ErrorCode::Unsupported);
                  ctx.set_output(0, t, broadcast_static(ctx.input(0).shape, ctx.input(1).shape));
                  Fast fast = Fast::None;
                  const auto& ci = ctx.input(1);
                  // A one-element exponent only adds leading 1-dims to the output, so the layout equals X's.
                  if (ci.is_constant() && ci.constant->numel() == 1 && dtype_is_float(t)) {
                    double e = 0;
                    visit_numeric_half(te, [&](auto tag) {
                      using E = typename decltype(tag)::type;
                      e = static_cast<double>(to_compute(ci.constant->data<E>()[0]));
                    });
                    if (e == 1) fast = Fast::One;
                    else if (e == 2) fast = Fast::Square;
                    else if (e == 3) fast = Fast::Cube;
                    else if (e == 0.5) fast = Fast::Sqrt;
                    else if (e == -1) fast = Fast::Recip;
                  }
                  // Reproducible numerics: the fast paths are exact IEEE operations; a general float
                  // power would be the C library's pow, whose last bits vary by version and ISA.
                  if (ctx.target().reproducible() && dtype_is_float(t) && fast == Fast::None)
                    ctx.unsupported("no reproducible kernel for a float Pow whose exponent is not a constant 1, 2, 3, 0.5 or -1");
                  return make_kernel([t, te, fast](ExecContext& ec) {
                    const Tensor& a = ec.input(0);
                    const Tensor& b = ec.input(1);
                    std::vector<int64_t> od;
                    if (!broadcast_dims(a.dims(), b.dims(), od))
                      ec.fail("shapes " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()) + " cannot be broadcast");
                    Tensor& out = ec.output(0, t, od);
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if (fast != Fast::None && out.numel() == a.numel()) {
                        if constexpr (!std::is_integral_v<T>) {
                          using C = compute_t<T>;
                          const T* px = a.data<T>();
                          T* po = out.data<T>();
                          const int64_t n = a.numel();
                          switch (fast) {
                            case Fast::One: for (int64_t i = 0; i < n; ++i) po[i] = px[i]; break;
                            case Fast::Square: for (int64_t i = 0; i < n; ++i) { const C v = to_compute(px[i]); po[i] = from_compute<T>(v * v); } break;
                            case Fast::Cube: for (int64_t i = 0; i < n; ++i) { const C v = to_compute(px[i]); po[i] = from_compute<T>(v * v * v); } break;
                            case Fast::Sqrt: for (int64_t i = 0; i < n; ++i) po[i] = from_compute<T>(std::sqrt(to_compute(px[i]))); break;
                            case Fast::Recip: for (int64_t i = 0; i < n; ++i) po[i] = from_compute<T>(C(1) / to_compute(px[i])); break;
                            case Fast::None: break;
                          }
                          return;
                        }
                      }
                      visit_numeric_half(te, [&](auto etag) {
                        using E = typename decltype(etag)::type;
                        broadcast_binary<T, E, T>(a, b, out, [](T x, E y) { return pow_value(x, y); });
                      });
                    });
                  });
                }}, Repro::Variant);
}

QUIVER_REGISTER_EMITTERS(pow) {
  emitters.add("", "Pow", emit_pow);
}
}  // namespace quiver::onnx
