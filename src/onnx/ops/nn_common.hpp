// Shared helpers for the convolution / pooling / recurrent operators (Conv, ConvTranspose, *Pool,
// LSTM/GRU/RNN): spatial geometry with auto_pad, and a generic N-d window iterator.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "onnx/ops/common.hpp"

namespace quiver::onnx {

enum class AutoPad { NotSet, SameUpper, SameLower, Valid };

inline AutoPad parse_auto_pad(const BuildContext& ctx) {
  const std::string s = ctx.attrs().get_string("auto_pad", "NOTSET");
  if (s == "NOTSET" || s.empty()) return AutoPad::NotSet;
  if (s == "SAME_UPPER") return AutoPad::SameUpper;
  if (s == "SAME_LOWER") return AutoPad::SameLower;
  if (s == "VALID") return AutoPad::Valid;
  ctx.fail("unknown auto_pad '" + s + "'");
}

// Window attributes of a convolution or pooling node (spatial rank `nd`).
struct WindowAttrs {
  size_t nd = 0;
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends (2*nd)
  AutoPad auto_pad = AutoPad::NotSet;
  bool ceil_mode = false;
};

// Reads strides/dilations/pads/auto_pad (kernel filled by caller); validates sizes.
inline void read_window_attrs(const BuildContext& ctx, WindowAttrs& w) {
  const auto& at = ctx.attrs();
  const size_t nd = w.nd;
  w.strides = at.get_ints("strides", std::vector<int64_t>(nd, 1));
  w.dilations = at.get_ints("dilations", std::vector<int64_t>(nd, 1));
  w.pads = at.get_ints("pads", std::vector<int64_t>(2 * nd, 0));
  w.auto_pad = parse_auto_pad(ctx);
  w.ceil_mode = at.get_int("ceil_mode", 0) != 0;
  if (w.kernel.size() != nd) ctx.fail("kernel_shape has " + std::to_string(w.kernel.size()) + " values, expected " + std::to_string(nd));
  if (w.strides.size() != nd) ctx.fail("strides has " + std::to_string(w.strides.size()) + " values, expected " + std::to_string(nd));
  if (w.dilations.size() != nd) ctx.fail("dilations has " + std::to_string(w.dilations.size()) + " values, expected " + std::to_string(nd));
  if (w.pads.size() != 2 * nd) ctx.fail("pads has " + std::to_string(w.pads.size()) + " values, expected " + std::to_string(2 * nd));
  for (size_t i = 0; i < nd; ++i) {
    if (w.kernel[i] <= 0) ctx.fail("kernel_shape values must be positive");
    if (w.strides[i] <= 0) ctx.fail("strides must be positive");
    if (w.dilations[i] <= 0) ctx.fail("dilations must be positive");
    if (w.pads[i] < 0 || w.pads[i + nd] < 0) ctx.fail("pads must be non-negative");
  }
}

// Output spatial dims and effective pads for input spatial dims `in`. Returns false when an
// output dim would be < 1 (message in `err`).
// `out` holds nd values, `pads` 2*nd values (caller-provided, no allocation on the hot path).
inline bool window_output(const WindowAttrs& w, const int64_t* in, int64_t* out, int64_t* pads, std::string* err) {
  const size_t nd = w.nd;
  for (size_t i = 0; i < 2 * nd; ++i) pads[i] = w.pads[i];
  for (size_t i = 0; i < nd; ++i) {
    const int64_t ek = (w.kernel[i] - 1) * w.dilations[i] + 1;
    const int64_t s = w.strides[i];
    switch (w.auto_pad) {
      case AutoPad::NotSet: {
        const int64_t span = in[i] + pads[i] + pads[i + nd] - ek;
        if (span < 0) { out[i] = 0; break; }
        out[i] = (w.ceil_mode ? (span + s - 1) / s : span / s) + 1;
        // ceil_mode: the last window must start inside the input or left padding.
        if (w.ceil_mode && (out[i] - 1) * s >= in[i] + pads[i]) --out[i];
        break;
      }
      case AutoPad::Valid:
        pads[i] = pads[i + nd] = 0;
        out[i] = in[i] >= ek ? (w.ceil_mode ? (in[i] - ek + s - 1) / s : (in[i] - ek) / s) + 1 : 0;
        break;
      case AutoPad::SameUpper:
      case AutoPad::SameLower: {
        out[i] = (in[i] + s - 1) / s;
        const int64_t total = std::max<int64_t>(0, (out[i] - 1) * s + ek - in[i]);
        const int64_t small = total / 2, big = total - small;
        pads[i] = w.auto_pad == AutoPad::SameUpper ? small : big;
        pads[i + nd] = w.auto_pad == AutoPad::SameUpper ? big : small;
        break;
      }
    }
    if (out[i] < 1) {
      if (err) *err = "window does not fit: input spatial dim " + std::to_string(i) + " is " + std::to_string(in[i]) +
            ", effective kernel " + std::to_string(ek);
      return false;
    }
  }
  return true;
}

// Static output shape for build-time inference ([N, C_out, spatial...]); nullopt if not computable.
inline std::optional<std::vector<int64_t>> window_static_shape(const WindowAttrs& w, const ValueInfo& x, int64_t c_out) {
  if (!x.shape || x.shape->size() != w.nd + 2) return std::nullopt;
  std::vector<int64_t> out = {(*x.shape)[0], c_out};
  std::vector<int64_t> in(x.shape->begin() + 2, x.shape->end());
  for (int64_t d : in)
    if (d < 0) {
      for (size_t i = 0; i < w.nd; ++i) out.push_back(-1);
      return out;
    }
  std::vector<int64_t> o(w.nd), p(2 * w.nd);
  if (!window_output(w, in.data(), o.data(), p.data(), nullptr)) return std::nullopt;
  out.insert(out.end(), o.begin(), o.end());
  return out;
}

// Spatial geometry normalised to 3-D (leading dims of size 1 for 1-D/2-D).
struct Geom3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
};

// Fills g from nd-dim values (nd <= 3). Trivial dims (in = out = kernel = 1, no leading pad, e.g.
// the trailing 1 of [N, C, L, 1]) are dropped so the innermost loop runs over a real dim.
inline void make_geom3(size_t nd, const int64_t* in, const int64_t* out, const int64_t* kernel, const int64_t* strides,
                       const int64_t* dil, const int64_t* pads_begin, Geom3& g) {
  size_t keep[3], nk = 0;
  for (size_t j = 0; j < nd; ++j)
    if (!(in[j] == 1 && out[j] == 1 && kernel[j] == 1 && pads_begin[j] == 0)) keep[nk++] = j;
  const size_t off = 3 - nk;
  for (size_t i = 0; i < 3; ++i) {
    const bool real = i >= off;
    const size_t j = real ? keep[i - off] : 0;
    g.in[i] = real ? in[j] : 1;
    g.out[i] = real ? out[j] : 1;
    g.k[i] = real ? kernel[j] : 1;
    g.s[i] = real ? strides[j] : 1;
    g.d[i] = real ? dil[j] : 1;
    g.pb[i] = real ? pads_begin[j] : 0;
  }
}

// Valid output range [lo, hi) along one axis for kernel tap kk: 0 <= o*s - p + kk*d < in.
inline void valid_range(int64_t out, int64_t in, int64_t s, int64_t p, int64_t off, int64_t& lo, int64_t& hi) {
  // o*s >= p - off  and  o*s < in + p - off  where off = kk*d
  const int64_t a = p - off;
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  const int64_t b = in + p - off;  // o*s < b
  hi = b <= 0 ? 0 : (b - 1) / s + 1;
  lo = std::min(lo, out);
  hi = std::max(std::min(hi, out), lo);
}

// im2col for `channels` input channels of one image: col[(c, kd, kh, kw), (od, oh, ow)].
template <class T>
void im2col3(const T* x, int64_t channels, const Geom3& g, T* col) {
  const int64_t L = g.out_size(), inHW = g.in[1] * g.in[2];
  for (int64_t c = 0; c < channels; ++c) {
    const T* xc = x + c * g.in_size();
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          T* row = col;
          col += L;
          int64_t wlo, whi;
          valid_range(g.out[2], g.in[2], g.s[2], g.pb[2], kw * g.d[2], wlo, whi);
          for (int64_t od = 0; od < g.out[0]; ++od) {
            const int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];
            for (int64_t oh = 0; oh < g.out[1]; ++oh) {
              T* dst = row + (od * g.out[1] + oh) * g.out[2];
              const int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
              if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
                for (int64_t ow = 0; ow < g.out[2]; ++ow) dst[ow] = T(0);
                continue;
              }
              const T* src = xc + id * inHW + ih * g.in[2] - g.pb[2] + kw * g.d[2];
              for (int64_t ow = 0; ow < wlo; ++ow) dst[ow] = T(0);
              if (g.s[2] == 1) {
                for (int64_t ow = wlo; ow < whi; ++ow) dst[ow] = src[ow];
              } else {
                const int64_t s = g.s[2];
                for (int64_t ow = wlo; ow < whi; ++ow) dst[ow] = src[ow * s];
              }
              for (int64_t ow = whi; ow < g.out[2]; ++ow) dst[ow] = T(0);
            }
          }
        }
  }
}

// col2im (adjoint of im2col3): accumulates col into x (x must be initialised by the caller).
template <class T>
void col2im3(const T* col, int64_t channels, const Geom3& g, T* x) {
  const int64_t L = g.out_size(), inHW = g.in[1] * g.in[2];
  for (int64_t c = 0; c < channels; ++c) {
    T* xc = x + c * g.in_size();
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const T* row = col;
          col += L;
          int64_t wlo, whi;
          valid_range(g.out[2], g.in[2], g.s[2], g.pb[2], kw * g.d[2], wlo, whi);
          for (int64_t od = 0; od < g.out[0]; ++od) {
            const int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];
            if (id < 0 || id >= g.in[0]) continue;
            for (int64_t oh = 0; oh < g.out[1]; ++oh) {
              const int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
              if (ih < 0 || ih >= g.in[1]) continue;
              const T* srcrow = row + (od * g.out[1] + oh) * g.out[2];
              T* dst = xc + id * inHW + ih * g.in[2] - g.pb[2] + kw * g.d[2];
              const int64_t s = g.s[2];
              for (int64_t ow = wlo; ow < whi; ++ow) dst[ow * s] += srcrow[ow];
            }
          }
        }
  }
}

}  // namespace quiver::onnx
