// GridSample (opset 16: 2-D, modes bilinear/nearest/bicubic; opset 20+: N-D, linear/nearest/cubic):
// samples X[n, c] at the normalised grid coordinates (last grid dim = spatial dims in reverse order)
// with zeros / border / reflection padding, like PyTorch's grid_sample. Nearest rounds half to even
// (the conformance data for 3-D uses the same rounding as 2-D).
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
enum class GsMode { Nearest, Linear, Cubic };
enum class GsPad { Zeros, Border, Reflection };

double gs_reflect(double x, double lo, double hi) {
  const double rng = hi - lo;
  if (rng <= 0) return lo;
  if (x < lo) {
    const double dx = lo - x;
    const int64_t n = static_cast<int64_t>(dx / rng);
    const double r = dx - static_cast<double>(n) * rng;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const double dx = x - hi;
    const int64_t n = static_cast<int64_t>(dx / rng);
    const double r = dx - static_cast<double>(n) * rng;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

void cubic_w(double t, double* c) {
  const double a = -0.75;
  t = std::abs(t);
  c[0] = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a;
  c[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
  c[2] = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1;
  c[3] = ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a;
}

template <class T>
double as_double(T v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return static_cast<double>(v);
}
template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) return T(static_cast<float>(v));
  else return static_cast<T>(v);
}

template <class T, class G>
void grid_sample(const Tensor& x, const Tensor& grid, Tensor& y, GsMode mode, GsPad pad, bool align) {
  const size_t D = x.rank() - 2;
  const int64_t N = x.dim(0), C = x.dim(1);
  std::vector<int64_t> sd(x.dims().begin() + 2, x.dims().end());
  const auto ss = contiguous_strides(sd);
  const int64_t spatial_in = product(sd);
  const int64_t P = product(grid.dims(), 1, grid.rank() - 1);  // output points per batch
  const T* px = x.data<T>();
  const G* pg = grid.data<G>();
  T* py = y.data<T>();
  const int64_t ntap = mode == GsMode::Nearest ? 1 : (mode == GsMode::Linear ? 2 : 4);
  std::vector<int64_t> tap_off(D * 4);
  std::vector<double> tap_w(D * 4);
  std::vector<uint8_t> tap_ok(D * 4);
  std::vector<int64_t> combo(D);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t p = 0; p < P; ++p) {
      const G* g = pg + (n * P + p) * static_cast<int64_t>(D);
      for (size_t i = 0; i < D; ++i) {
        const double len = static_cast<double>(sd[i]);
        const double nv = as_double(g[D - 1 - i]);
        double v = align ? (nv + 1) / 2.0 * (len - 1) : ((nv + 1) * len - 1) / 2.0;
        if (mode == GsMode::Nearest) v = std::nearbyint(v);
        const double lo = align ? 0.0 : -0.5, hi = align ? len - 1 : len - 0.5;
        if (v < lo || v > hi) {
          if (pad == GsPad::Border) v = std::clamp(v, 0.0, len - 1);
          else if (pad == GsPad::Reflection) v = gs_reflect(v, lo, hi);
        }
        double w[4];
        int64_t first;
        if (mode == GsMode::Nearest) {
          first = static_cast<int64_t>(v);  // already integral (or reflected, truncated like the reference)
          w[0] = 1;
        } else {
          const double f = std::floor(v);
          const double t = v - f;
          if (mode == GsMode::Linear) { first = static_cast<int64_t>(f); w[0] = 1 - t; w[1] = t; }
          else { first = static_cast<int64_t>(f) - 1; cubic_w(t, w); }
        }
        for (int64_t k = 0; k < ntap; ++k) {
          int64_t idx = first + k;
          bool ok = true;
          if (idx < 0 || idx >= sd[i]) {
            if (pad == GsPad::Zeros) ok = false;
            else if (pad == GsPad::Border) idx = std::clamp<int64_t>(idx, 0, sd[i] - 1);
            else idx = static_cast<int64_t>(gs_reflect(static_cast<double>(idx), lo, hi));
            idx = std::clamp<int64_t>(idx, 0, sd[i] - 1);
          }
          tap_off[i * 4 + k] = idx * ss[i];
          tap_w[i * 4 + k] = w[k];
          tap_ok[i * 4 + k] = ok;
        }
      }
      // Sum over all tap combinations, for every channel.
      for (int64_t c = 0; c < C; ++c) {
        const T* xc = px + (n * C + c) * spatial_in;
        double acc = 0;
        std::fill(combo.begin(), combo.end(), 0);
        while (true) {
          double w = 1;
          int64_t off = 0;
          bool ok = true;
          for (size_t i = 0; i < D; ++i) {
            const size_t t = i * 4 + static_cast<size_t>(combo[i]);
            w *= tap_w[t];
            off += tap_off[t];
            ok &= tap_ok[t] != 0;
          }
          if (ok && w != 0) acc += w * as_double(xc[off]);
          size_t i = D;
          while (i-- > 0) {
            if (++combo[i] < ntap) break;
            combo[i] = 0;
          }
          if (i == static_cast<size_t>(-1)) break;
        }
        py[(n * C + c) * P + p] = from_double<T>(acc);
      }
    }
  }
}
}  // namespace

QUIVER_REGISTER_OPS(gridsample) {
  registry.add({"", "GridSample", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  const DType t = ctx.input_dtype(0), gt = ctx.input_dtype(1);
                  ctx.expect_dtype(1, {DType::F32, DType::F64, DType::F16});
                  if (!(t == DType::F32 || t == DType::F64 || t == DType::F16))
                    ctx.unsupported("GridSample on " + std::string(dtype_name(t)) + " data");
                  const std::string m = ctx.attrs().get_string("mode", ctx.opset() < 20 ? "bilinear" : "linear");
                  GsMode mode;
                  if (m == "nearest") mode = GsMode::Nearest;
                  else if (m == "bilinear" || m == "linear") mode = GsMode::Linear;
                  else if (m == "bicubic" || m == "cubic") mode = GsMode::Cubic;
                  else ctx.fail("unknown mode '" + m + "'");
                  const std::string pm = ctx.attrs().get_string("padding_mode", "zeros");
                  GsPad pad;
                  if (pm == "zeros") pad = GsPad::Zeros;
                  else if (pm == "border") pad = GsPad::Border;
                  else if (pm == "reflection") pad = GsPad::Reflection;
                  else ctx.fail("unknown padding_mode '" + pm + "'");
                  const bool align = ctx.attrs().get_int("align_corners", 0) != 0;
                  ctx.set_output(0, t);
                  return make_kernel([t, gt, mode, pad, align](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& g = ec.input(1);
                    if (x.rank() < 3) ec.fail("X must have rank >= 3 (N, C, spatial...)");
                    const size_t D = x.rank() - 2;
                    if (g.rank() != D + 2 || g.dim(0) != x.dim(0) || g.dim(D + 1) != static_cast<int64_t>(D))
                      ec.fail("grid dims " + dims_to_string(g.dims()) + " do not match X dims " + dims_to_string(x.dims()), "grid");
                    std::vector<int64_t> od{x.dim(0), x.dim(1)};
                    od.insert(od.end(), g.dims().begin() + 1, g.dims().end() - 1);
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    if (x.numel() == 0) ec.fail("X is empty");
                    auto go = [&](auto xtag) {
                      using T = typename decltype(xtag)::type;
                      if (gt == DType::F32) grid_sample<T, float>(x, g, y, mode, pad, align);
                      else if (gt == DType::F64) grid_sample<T, double>(x, g, y, mode, pad, align);
                      else grid_sample<T, Half>(x, g, y, mode, pad, align);
                    };
                    if (t == DType::F32) go(TypeTag<float>{});
                    else if (t == DType::F64) go(TypeTag<double>{});
                    else go(TypeTag<Half>{});
                  });
                }});
}
}  // namespace quiver::onnx
