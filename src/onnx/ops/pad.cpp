// Pad: constant / reflect / edge / wrap padding (negative pads crop). pads (and the constant value)
// are attributes before opset 11 and inputs from 11; `axes` input from 18. Each axis gets a map
// output index -> source index (or "constant"); rows are filled with one memcpy for the interior.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
enum class PadMode { Constant, Reflect, Edge, Wrap };

template <class T>
void pad_typed(const Tensor& x, Tensor& y, const std::vector<int64_t>& pb, const T& value, PadMode mode) {
  const size_t r = x.rank();
  const auto& od = y.dims();
  const auto& id = x.dims();
  const T* px = x.data<T>();
  T* py = y.data<T>();
  if (r == 0) { py[0] = px[0]; return; }
  // Per-axis maps.
  std::vector<std::vector<int64_t>> map(r);
  for (size_t d = 0; d < r; ++d) {
    const int64_t n = id[d];
    map[d].resize(static_cast<size_t>(od[d]));
    for (int64_t o = 0; o < od[d]; ++o) {
      int64_t s = o - pb[d];
      if (s < 0 || s >= n) {
        switch (mode) {
          case PadMode::Constant: s = -1; break;
          case PadMode::Edge: s = n == 0 ? -1 : std::clamp<int64_t>(s, 0, n - 1); break;
          case PadMode::Wrap: s = n == 0 ? -1 : ((s % n) + n) % n; break;
          case PadMode::Reflect:
            if (n == 0) s = -1;
            else if (n == 1) s = 0;
            else {
              const int64_t period = 2 * (n - 1);
              s = ((s % period) + period) % period;
              if (s >= n) s = period - s;
            }
            break;
        }
      }
      map[d][o] = s;
    }
  }
  const auto xs = contiguous_strides(id);
  const int64_t inner = od[r - 1];
  const int64_t rows = inner == 0 ? 0 : y.numel() / inner;
  // Interior run of the last axis: output [lo, hi) maps to source lo - pb.
  const int64_t lo = std::clamp<int64_t>(pb[r - 1], 0, inner);
  const int64_t hi = std::clamp<int64_t>(pb[r - 1] + id[r - 1], lo, inner);
  const auto& lm = map[r - 1];
  std::vector<int64_t> idx(r, 0);
  for (int64_t row = 0; row < rows; ++row) {
    T* dst = py + row * inner;
    int64_t off = 0;
    bool constant = false;
    for (size_t d = 0; d + 1 < r; ++d) {
      const int64_t s = map[d][idx[d]];
      if (s < 0) { constant = true; break; }
      off += s * xs[d];
    }
    if (constant) {
      std::fill_n(dst, inner, value);
    } else {
      const T* src = px + off;
      for (int64_t o = 0; o < lo; ++o) dst[o] = lm[o] < 0 ? value : src[lm[o]];
      copy_n_elems(src + (lo - pb[r - 1]), dst + lo, hi - lo);
      for (int64_t o = hi; o < inner; ++o) dst[o] = lm[o] < 0 ? value : src[lm[o]];
    }
    for (size_t d = r - 1; d-- > 0;) {
      if (++idx[d] < od[d]) break;
      idx[d] = 0;
    }
  }
}
}  // namespace

QUIVER_REGISTER_OPS(pad) {
  registry.add({"", "Pad", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const std::string m = ctx.attrs().get_string("mode", "constant");
                  PadMode mode;
                  if (m == "constant") mode = PadMode::Constant;
                  else if (m == "reflect") mode = PadMode::Reflect;
                  else if (m == "edge") mode = PadMode::Edge;
                  else if (m == "wrap" && ctx.opset() >= 19) mode = PadMode::Wrap;
                  else ctx.fail("unknown pad mode '" + m + "'");
                  const DType t = ctx.input_dtype(0);
                  std::optional<std::vector<int64_t>> pads;
                  double value = 0;
                  const bool legacy = ctx.opset() < 11;
                  if (legacy) {
                    ctx.expect_inputs(1, 1);
                    pads = ctx.attrs().has("pads") ? ctx.attrs().get_ints("pads") : ctx.attrs().req_ints("paddings");
                    value = ctx.attrs().get_float("value", 0.f);
                  } else {
                    ctx.expect_inputs(2, 4);
                    ctx.expect_dtype(1, {DType::I64});
                  }
                  std::optional<std::vector<int64_t>> shape;
                  if (ctx.input(0).shape) shape = std::vector<int64_t>(ctx.input(0).shape->size(), -1);
                  ctx.set_output(0, t, shape);
                  return make_kernel([mode, t, pads, value, legacy](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t r = static_cast<int64_t>(x.rank());
                    std::vector<int64_t> pv = pads ? *pads : read_ints(ec.input(1));
                    std::vector<int64_t> axes;
                    if (!legacy && ec.has_input(3)) axes = norm_axes(read_ints(ec.input(3)), r, &ec, nullptr);
                    else for (int64_t i = 0; i < r; ++i) axes.push_back(i);
                    const size_t na = axes.size();
                    if (pv.size() != 2 * na)
                      ec.fail("pads has " + std::to_string(pv.size()) + " entries, expected " + std::to_string(2 * na), "pads");
                    std::vector<int64_t> pb(r, 0), pe(r, 0), od = x.dims();
                    for (size_t i = 0; i < na; ++i) { pb[axes[i]] = pv[i]; pe[axes[i]] = pv[na + i]; }
                    for (int64_t d = 0; d < r; ++d) {
                      od[d] = x.dim(d) + pb[d] + pe[d];
                      if (od[d] < 0) ec.fail("pads crop axis " + std::to_string(d) + " below zero", "pads");
                      if (mode != PadMode::Constant && x.dim(d) == 0 && od[d] > 0)
                        ec.fail("cannot " + std::string(mode == PadMode::Reflect ? "reflect" : "edge/wrap") + "-pad an empty axis");
                    }
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    visit_dtype(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      T v{};
                      if constexpr (!std::is_same_v<T, std::string>) {
                        if (!legacy && ec.has_input(2) && ec.input(2).numel() > 0) v = ec.input(2).data<T>()[0];
                        else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) v = T(static_cast<float>(value));
                        else v = static_cast<T>(value);
                      } else {
                        if (!legacy && ec.has_input(2) && ec.input(2).numel() > 0) v = ec.input(2).data<T>()[0];
                      }
                      pad_typed<T>(x, y, pb, v, mode);
                    });
                  });
                }}, Repro::Exact);
}
}  // namespace quiver::onnx
