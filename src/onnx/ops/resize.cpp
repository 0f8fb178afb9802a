// Resize (opset 10/11/13/18/19) and the deprecated Upsample (opset 7/9): nearest, linear and cubic
// interpolation, applied separably one axis at a time. Per output coordinate the source coordinate
// follows `coordinate_transformation_mode` (half_pixel, half_pixel_symmetric, pytorch_half_pixel,
// align_corners, asymmetric, tf_crop_and_resize); taps outside the input take the edge value
// (or are dropped with exclude_outside), tf_crop_and_resize writes extrapolation_value outside the
// crop. Antialiasing (opset 18) widens linear/cubic kernels by 1/scale when downsampling.
#include <limits>

#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
enum class Mode { Nearest, Linear, Cubic };
enum class Coord { HalfPixel, HalfPixelSymmetric, PytorchHalfPixel, AlignCorners, Asymmetric, TfCropAndResize, TfHalfPixelNN };
enum class NearestMode { RoundPreferFloor, RoundPreferCeil, Floor, Ceil };
enum class Aspect { Stretch, NotLarger, NotSmaller };

struct Params {
  Mode mode = Mode::Nearest;
  Coord coord = Coord::HalfPixel;
  NearestMode nearest = NearestMode::RoundPreferFloor;
  Aspect aspect = Aspect::Stretch;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation = 0.0;
  std::vector<int64_t> axes;  // empty = all
  int opset = 19;
  bool upsample = false;
};

// Taps for one axis: for output index x, n taps (idx, weight); extrap[x] marks extrapolation.
struct AxisTaps {
  int64_t n = 0;
  std::vector<int64_t> idx;
  std::vector<double> w;
  std::vector<uint8_t> extrap;
  bool identity = false;
};

void cubic_coeffs(double ratio, double a, double* c) {
  const double r1 = ratio + 1, r0 = ratio, s0 = 1 - ratio, s1 = 2 - ratio;
  c[0] = ((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a;
  c[1] = ((a + 2) * r0 - (a + 3)) * r0 * r0 + 1;
  c[2] = ((a + 2) * s0 - (a + 3)) * s0 * s0 + 1;
  c[3] = ((a * s1 - 5 * a) * s1 + 8 * a) * s1 - 4 * a;
}

AxisTaps make_taps(const Params& p, int64_t in, int64_t out, double scale, double roi_start, double roi_end) {
  AxisTaps t;
  const double out_f = scale * static_cast<double>(in);  // the reference uses the unrounded output width
  std::vector<double> coeffs;
  // Number of taps.
  double s_aa = std::min(scale, 1.0);
  int64_t start = 0;
  if (p.mode == Mode::Nearest) t.n = 1;
  else if (p.mode == Mode::Linear) {
    if (p.antialias && scale < 1.0) { start = static_cast<int64_t>(std::floor(-1.0 / s_aa) + 1); t.n = 2 - 2 * start; }
    else { t.n = 2; start = 0; }
  } else {
    if (p.antialias && scale < 1.0) { start = static_cast<int64_t>(std::floor(-2.0 / s_aa) + 1); t.n = 2 - 2 * start; }
    else { t.n = 4; start = -1; }
  }
  t.idx.resize(static_cast<size_t>(out * t.n));
  t.w.resize(t.idx.size());
  t.extrap.assign(static_cast<size_t>(out), 0);
  coeffs.resize(static_cast<size_t>(t.n));
  bool identity = in == out;
  for (int64_t x = 0; x < out; ++x) {
    const double xf = static_cast<double>(x);
    double xo = 0;
    switch (p.coord) {
      case Coord::AlignCorners: xo = out_f == 1 ? 0.0 : xf * static_cast<double>(in - 1) / (out_f - 1); break;
      case Coord::Asymmetric: xo = xf / scale; break;
      case Coord::TfCropAndResize:
        xo = out_f == 1 ? (roi_end - roi_start) * static_cast<double>(in - 1) / 2
                        : xf * (roi_end - roi_start) * static_cast<double>(in - 1) / (out_f - 1);
        xo += roi_start * static_cast<double>(in - 1);
        break;
      case Coord::PytorchHalfPixel: xo = out_f == 1 ? -0.5 : (xf + 0.5) / scale - 0.5; break;
      case Coord::HalfPixel: xo = (xf + 0.5) / scale - 0.5; break;
      case Coord::HalfPixelSymmetric: {
        const double adjustment = static_cast<double>(out) / out_f;
        const double center = static_cast<double>(in) / 2;
        xo = center * (1 - adjustment) + (xf + 0.5) / scale - 0.5;
        break;
      }
      case Coord::TfHalfPixelNN: xo = (xf + 0.5) / scale; break;
    }
    int64_t* ti = t.idx.data() + x * t.n;
    double* tw = t.w.data() + x * t.n;
    if (p.coord == Coord::TfCropAndResize && (xo < 0 || xo > static_cast<double>(in - 1))) {
      t.extrap[x] = 1;
      identity = false;
      for (int64_t j = 0; j < t.n; ++j) { ti[j] = 0; tw[j] = 0; }
      continue;
    }
    // Left neighbour x0 with ratio in (0, 1] (an integral coordinate counts as ratio 1).
    const double fl = std::floor(xo);
    const bool integral = fl == xo;
    const int64_t x0 = static_cast<int64_t>(fl) - (integral ? 1 : 0);
    const double ratio = integral ? 1.0 : xo - fl;
    if (p.mode == Mode::Nearest) {
      bool right = true;
      if (integral) right = true;
      else switch (p.nearest) {
        case NearestMode::RoundPreferFloor: right = ratio > 0.5; break;
        case NearestMode::RoundPreferCeil: right = ratio >= 0.5; break;
        case NearestMode::Floor: right = false; break;
        case NearestMode::Ceil: right = true; break;
      }
      ti[0] = std::clamp<int64_t>(right ? x0 + 1 : x0, 0, in - 1);
      tw[0] = 1;
      if (ti[0] != x) identity = false;
      continue;
    }
    if (p.mode == Mode::Linear) {
      if (p.antialias && scale < 1.0) {
        for (int64_t j = 0; j < t.n; ++j) coeffs[j] = std::clamp(1 - std::abs((static_cast<double>(start + j) - ratio) * s_aa), 0.0, 1.0);
      } else {
        coeffs[0] = 1 - ratio;
        coeffs[1] = ratio;
      }
    } else {
      if (p.antialias && scale < 1.0) {
        const double a = p.cubic_a;
        for (int64_t j = 0; j < t.n; ++j) {
          const double v = std::abs(s_aa * (static_cast<double>(start + j) - ratio));
          const double v2 = v * v, v3 = v2 * v;
          coeffs[j] = v <= 1 ? (a + 2) * v3 - (a + 3) * v2 + 1 : (v < 2 ? a * v3 - 5 * a * v2 + 8 * a * v - 4 * a : 0.0);
        }
      } else {
        cubic_coeffs(ratio, p.cubic_a, coeffs.data());
      }
    }
    if (p.antialias && scale < 1.0) {
      double s = 0;
      for (auto c : coeffs) s += c;
      for (auto& c : coeffs) c /= s;
    }
    // Tap j sits at x0 + start + j for linear (start 0 or antialias start) ... the reference picks
    // the n nearest indices to xo, i.e. x0 - (n/2 - 1) .. x0 + n/2.
    const int64_t first = x0 - (t.n / 2 - 1);
    double sum = 0;
    for (int64_t j = 0; j < t.n; ++j) {
      const int64_t k = first + j;
      double c = coeffs[j];
      if (p.exclude_outside && (k < 0 || k >= in)) c = 0;
      ti[j] = std::clamp<int64_t>(k, 0, in - 1);
      tw[j] = c;
      sum += c;
    }
    if (p.exclude_outside && sum != 0)
      for (int64_t j = 0; j < t.n; ++j) tw[j] /= sum;
    // Identity if all weight sits on x.
    for (int64_t j = 0; j < t.n; ++j)
      if (tw[j] != 0 && (ti[j] != x || tw[j] != 1)) identity = false;
  }
  t.identity = identity;
  return t;
}

// dst[o, x, i] = sum_j w * src[o, idx_j, i]
void apply_axis(const double* src, double* dst, int64_t outer, int64_t in, int64_t inner, int64_t out, const AxisTaps& t,
                double extrap) {
  for (int64_t o = 0; o < outer; ++o) {
    const double* s = src + o * in * inner;
    double* d = dst + o * out * inner;
    for (int64_t x = 0; x < out; ++x) {
      double* dr = d + x * inner;
      if (t.extrap[x]) { std::fill_n(dr, inner, extrap); continue; }
      const int64_t* ti = t.idx.data() + x * t.n;
      const double* tw = t.w.data() + x * t.n;
      if (t.n == 1) { std::copy_n(s + ti[0] * inner, inner, dr); continue; }
      std::fill_n(dr, inner, 0.0);
      for (int64_t j = 0; j < t.n; ++j) {
        const double w = tw[j];
        if (w == 0) continue;
        const double* sr = s + ti[j] * inner;
        for (int64_t i = 0; i < inner; ++i) dr[i] += w * sr[i];
      }
    }
  }
}

template <class T>
void resize_typed(const Tensor& x, Tensor& y, const std::vector<int64_t>& od, const std::vector<double>& scales,
                  const std::vector<double>& roi, const Params& p) {
  const size_t r = x.rank();
  std::vector<double> a(static_cast<size_t>(x.numel())), b;
  const T* px = x.data<T>();
  for (size_t i = 0; i < a.size(); ++i) {
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) a[i] = static_cast<float>(px[i]);
    else a[i] = static_cast<double>(px[i]);
  }
  std::vector<int64_t> cur = x.dims();
  for (size_t d = 0; d < r; ++d) {
    const double rs = roi.empty() ? 0.0 : roi[d], re = roi.empty() ? 1.0 : roi[r + d];
    AxisTaps t = make_taps(p, cur[d], od[d], scales[d], rs, re);
    if (t.identity) continue;
    const int64_t outer = product(cur, 0, d), inner = product(cur, d + 1);
    b.resize(static_cast<size_t>(outer * od[d] * inner));
    apply_axis(a.data(), b.data(), outer, cur[d], inner, od[d], t, p.extrapolation);
    cur[d] = od[d];
    a.swap(b);
  }
  T* py = y.data<T>();
  for (size_t i = 0; i < a.size(); ++i) {
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) py[i] = T(static_cast<float>(a[i]));
    else if constexpr (std::is_integral_v<T>) {
      // Saturate like a float->int cast of the reference would for in-range values.
      py[i] = static_cast<T>(std::clamp<double>(a[i], static_cast<double>(std::numeric_limits<T>::lowest()),
                                                static_cast<double>(std::numeric_limits<T>::max())));
    } else py[i] = static_cast<T>(a[i]);
  }
}

std::vector<double> read_doubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  visit_dtype(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, std::string>) throw_error(ErrorCode::InvalidArgument, "expected a numeric tensor");
    else
      for (size_t i = 0; i < v.size(); ++i) {
        if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) v[i] = static_cast<float>(t.data<T>()[i]);
        else v[i] = static_cast<double>(t.data<T>()[i]);
      }
  });
  return v;
}

void run_resize(ExecContext& ec, const Params& p, std::optional<std::vector<double>> const_scales, int scales_in,
                int sizes_in, int roi_in) {
  const Tensor& x = ec.input(0);
  const int64_t r = static_cast<int64_t>(x.rank());
  std::vector<int64_t> axes = p.axes.empty() ? std::vector<int64_t>{} : norm_axes(p.axes, r, &ec, nullptr);
  if (axes.empty())
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  const size_t na = axes.size();
  std::vector<double> scales(r, 1.0);
  std::vector<int64_t> od = x.dims();
  std::vector<double> roi;
  if (roi_in >= 0 && ec.has_input(roi_in) && p.coord == Coord::TfCropAndResize) {
    auto rv = read_doubles(ec.input(roi_in));
    if (rv.size() != 2 * na) ec.fail("roi must have 2 * " + std::to_string(na) + " entries", "roi");
    roi.assign(2 * r, 0.0);
    for (int64_t i = 0; i < r; ++i) roi[r + i] = 1.0;
    for (size_t i = 0; i < na; ++i) { roi[axes[i]] = rv[i]; roi[r + axes[i]] = rv[na + i]; }
  }
  std::vector<double> sv;
  if (const_scales) sv = *const_scales;
  else if (scales_in >= 0 && ec.has_input(scales_in)) sv = read_doubles(ec.input(scales_in));
  std::vector<int64_t> sz;
  if (sizes_in >= 0 && ec.has_input(sizes_in) && ec.input(sizes_in).numel() > 0) sz = read_ints(ec.input(sizes_in));
  if (!sz.empty()) {
    if (!sv.empty()) ec.fail("only one of scales and sizes may be given");
    if (sz.size() != na) ec.fail("sizes must have " + std::to_string(na) + " entries", "sizes");
    for (size_t i = 0; i < na; ++i) {
      if (sz[i] < 0) ec.fail("negative output size", "sizes");
      scales[axes[i]] = static_cast<double>(sz[i]) / static_cast<double>(x.dim(axes[i]));
    }
    if (p.aspect != Aspect::Stretch) {
      double s = p.aspect == Aspect::NotLarger ? 1e300 : -1e300;
      for (auto a : axes) s = p.aspect == Aspect::NotLarger ? std::min(s, scales[a]) : std::max(s, scales[a]);
      for (auto a : axes) {
        scales[a] = s;
        od[a] = static_cast<int64_t>(s * static_cast<double>(x.dim(a)) + 0.5);
      }
    } else {
      for (size_t i = 0; i < na; ++i) od[axes[i]] = sz[i];
    }
  } else {
    if (sv.size() != na) ec.fail("scales must have " + std::to_string(na) + " entries (or give sizes)", "scales");
    for (size_t i = 0; i < na; ++i) {
      if (!(sv[i] > 0)) ec.fail("scales must be positive", "scales");
      scales[axes[i]] = sv[i];
      od[axes[i]] = static_cast<int64_t>(sv[i] * static_cast<double>(x.dim(axes[i])));
    }
  }
  Tensor& y = ec.output(0, x.dtype(), od);
  if (y.numel() == 0) return;
  if (x.numel() == 0) ec.fail("cannot resize an empty tensor to a non-empty one");
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool>) ec.fail("unsupported dtype", "", ErrorCode::Unsupported);
    else resize_typed<T>(x, y, od, scales, roi, p);
  });
}

Params read_params(BuildContext& ctx, bool upsample) {
  Params p;
  p.opset = ctx.opset();
  p.upsample = upsample;
  const auto& a = ctx.attrs();
  const std::string mode = a.get_string("mode", "nearest");
  if (mode == "nearest") p.mode = Mode::Nearest;
  else if (mode == "linear" || mode == "bilinear") p.mode = Mode::Linear;
  else if (mode == "cubic" && !upsample) p.mode = Mode::Cubic;
  else ctx.fail("unknown mode '" + mode + "'");
  if (upsample || ctx.opset() < 11) {
    // Upsample and Resize-10: asymmetric coordinates, nearest rounds down.
    p.coord = Coord::Asymmetric;
    p.nearest = NearestMode::Floor;
    return p;
  }
  const std::string c = a.get_string("coordinate_transformation_mode", "half_pixel");
  if (c == "half_pixel") p.coord = Coord::HalfPixel;
  else if (c == "half_pixel_symmetric") p.coord = Coord::HalfPixelSymmetric;
  else if (c == "pytorch_half_pixel") p.coord = Coord::PytorchHalfPixel;
  else if (c == "align_corners") p.coord = Coord::AlignCorners;
  else if (c == "asymmetric") p.coord = Coord::Asymmetric;
  else if (c == "tf_crop_and_resize") p.coord = Coord::TfCropAndResize;
  else if (c == "tf_half_pixel_for_nn") p.coord = Coord::TfHalfPixelNN;
  else ctx.fail("unknown coordinate_transformation_mode '" + c + "'");
  const std::string n = a.get_string("nearest_mode", "round_prefer_floor");
  if (n == "round_prefer_floor") p.nearest = NearestMode::RoundPreferFloor;
  else if (n == "round_prefer_ceil") p.nearest = NearestMode::RoundPreferCeil;
  else if (n == "floor") p.nearest = NearestMode::Floor;
  else if (n == "ceil") p.nearest = NearestMode::Ceil;
  else ctx.fail("unknown nearest_mode '" + n + "'");
  const std::string k = a.get_string("keep_aspect_ratio_policy", "stretch");
  if (k == "stretch") p.aspect = Aspect::Stretch;
  else if (k == "not_larger") p.aspect = Aspect::NotLarger;
  else if (k == "not_smaller") p.aspect = Aspect::NotSmaller;
  else ctx.fail("unknown keep_aspect_ratio_policy '" + k + "'");
  p.cubic_a = a.get_float("cubic_coeff_a", -0.75f);
  p.exclude_outside = a.get_int("exclude_outside", 0) != 0;
  p.antialias = a.get_int("antialias", 0) != 0;
  if (p.antialias && p.mode == Mode::Nearest) ctx.fail("antialias is not defined for mode 'nearest'");
  p.extrapolation = a.get_float("extrapolation_value", 0.f);
  p.axes = a.get_ints("axes");
  return p;
}
}  // namespace

QUIVER_REGISTER_OPS(resize) {
  registry.add({"", "Resize", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  Params p = read_params(ctx, false);
                  int roi_in = -1, scales_in = 1, sizes_in = -1;
                  if (ctx.opset() < 11) ctx.expect_inputs(2, 2);
                  else { ctx.expect_inputs(1, 4); roi_in = 1; scales_in = 2; sizes_in = 3; }
                  const DType t = ctx.input_dtype(0);
                  std::optional<std::vector<int64_t>> shape;
                  if (ctx.input(0).shape) shape = std::vector<int64_t>(ctx.input(0).shape->size(), -1);
                  ctx.set_output(0, t, shape);
                  return make_kernel([p, roi_in, scales_in, sizes_in](ExecContext& ec) {
                    run_resize(ec, p, std::nullopt, scales_in, sizes_in, roi_in);
                  });
                }});
  registry.add({"", "Upsample", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  Params p = read_params(ctx, true);
                  std::optional<std::vector<double>> scales;
                  if (ctx.opset() < 9) {
                    ctx.expect_inputs(1, 1);
                    auto f = ctx.attrs().get_floats("scales");
                    if (f.empty()) ctx.fail("required attribute 'scales' is missing");
                    scales = std::vector<double>(f.begin(), f.end());
                  } else {
                    ctx.expect_inputs(2, 2);
                  }
                  const DType t = ctx.input_dtype(0);
                  std::optional<std::vector<int64_t>> shape;
                  if (ctx.input(0).shape) shape = std::vector<int64_t>(ctx.input(0).shape->size(), -1);
                  ctx.set_output(0, t, shape);
                  return make_kernel([p, scales](ExecContext& ec) { run_resize(ec, p, scales, scales ? -1 : 1, -1, -1); });
                }});
}
}  // namespace quiver::onnx
