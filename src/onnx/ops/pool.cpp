// MaxPool (optional Indices output, storage_order, dilations, ceil_mode), AveragePool
// (count_include_pad, ceil_mode, dilations) and LpPool, over 1-D/2-D/3-D spatial dims.
#include <limits>

#include "onnx/ops/nn_common.hpp"

namespace quiver::onnx {

namespace {

enum class PKind { Max, Avg, Lp };

class PoolKernel final : public Kernel {
 public:
  PoolKernel(PKind k, WindowAttrs w, DType t, bool count_include_pad, int64_t p, int64_t storage_order)
      : k_(k), w_(std::move(w)), t_(t), cip_(count_include_pad), p_(p), storage_order_(storage_order) {}

  void run(ExecContext& ec) const override {
    const Tensor& x = ec.input(0);
    const size_t nd = w_.nd;
    if (x.rank() != nd + 2) ec.fail("X must have rank " + std::to_string(nd + 2) + ", got " + dims_to_string(x.dims()));
    int64_t out[3], pads[6];
    std::string err;
    if (!window_output(w_, x.dims().data() + 2, out, pads, &err)) ec.fail(err);
    std::vector<int64_t> od = {x.dim(0), x.dim(1)};
    for (size_t i = 0; i < nd; ++i) od.push_back(out[i]);
    Tensor& y = ec.output(0, t_, od);
    Tensor* ind = (k_ == PKind::Max && ec.wants_output(1)) ? &ec.output(1, DType::I64, od) : nullptr;
    Geom3 g;
    make_geom3(nd, x.dims().data() + 2, out, w_.kernel.data(), w_.strides.data(), w_.dilations.data(), pads, g);
    int64_t pe[3];  // pad end, normalised to 3-D
    for (size_t i = 0; i < 3; ++i) pe[i] = i < 3 - nd ? 0 : pads[nd + (i - (3 - nd))];
    const int64_t planes = x.dim(0) * x.dim(1);
    auto body = [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* X = x.data<T>();
      T* Y = y.data<T>();
      int64_t* I = ind ? ind->data<int64_t>() : nullptr;
      const int64_t Lin = g.in_size(), Lout = g.out_size();
      for (int64_t pl = 0; pl < planes; ++pl) {
        const T* xp = X + pl * Lin;
        T* yp = Y + pl * Lout;
        int64_t oi = 0;
        for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
          for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
            for (int64_t o2 = 0; o2 < g.out[2]; ++o2, ++oi) {
              const int64_t s0 = o0 * g.s[0] - g.pb[0], s1 = o1 * g.s[1] - g.pb[1], s2 = o2 * g.s[2] - g.pb[2];
              double acc = k_ == PKind::Max ? -std::numeric_limits<double>::infinity() : 0.0;
              int64_t best = -1, valid = 0, padded = 0;
              for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
                const int64_t i0 = s0 + k0 * g.d[0];
                const bool in0 = i0 >= 0 && i0 < g.in[0];
                const bool pin0 = i0 >= -g.pb[0] && i0 < g.in[0] + pe[0];
                for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
                  const int64_t i1 = s1 + k1 * g.d[1];
                  const bool in1 = in0 && i1 >= 0 && i1 < g.in[1];
                  const bool pin1 = pin0 && i1 >= -g.pb[1] && i1 < g.in[1] + pe[1];
                  for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
                    const int64_t i2 = s2 + k2 * g.d[2];
                    if (pin1 && i2 >= -g.pb[2] && i2 < g.in[2] + pe[2]) ++padded;
                    if (!(in1 && i2 >= 0 && i2 < g.in[2])) continue;
                    ++valid;
                    const int64_t idx = (i0 * g.in[1] + i1) * g.in[2] + i2;
                    const double v = static_cast<double>(static_cast<float>(xp[idx]));
                    if (k_ == PKind::Max) {
                      if (v > acc || best < 0) { acc = v; best = idx; }
                    } else if (k_ == PKind::Avg) {
                      acc += v;
                    } else {
                      acc += std::pow(std::abs(v), static_cast<double>(p_));
                    }
                  }
                }
              }
              double r;
              if (k_ == PKind::Max) r = best < 0 ? 0.0 : acc;
              else if (k_ == PKind::Avg) {
                const int64_t div = cip_ ? padded : valid;
                r = div > 0 ? acc / static_cast<double>(div) : 0.0;
              } else r = std::pow(acc, 1.0 / static_cast<double>(p_));
              if constexpr (std::is_integral_v<T>) yp[oi] = static_cast<T>(best < 0 ? 0 : xp[best]);
              else yp[oi] = static_cast<T>(static_cast<float>(r));
              if (I) {
                int64_t flat = best;
                if (best >= 0 && storage_order_ == 1) {
                  // Column-major within the spatial plane.
                  const int64_t i2 = best % g.in[2], i1 = (best / g.in[2]) % g.in[1], i0 = best / (g.in[2] * g.in[1]);
                  flat = (i2 * g.in[1] + i1) * g.in[0] + i0;
                }
                I[pl * Lout + oi] = best < 0 ? -1 : pl * Lin + flat;
              }
            }
      }
    };
    switch (t_) {
      case DType::F32: body(TypeTag<float>{}); break;
      case DType::F64: body(TypeTag<double>{}); break;
      case DType::F16: body(TypeTag<Half>{}); break;
      case DType::BF16: body(TypeTag<BFloat16>{}); break;
      case DType::I8: body(TypeTag<int8_t>{}); break;
      case DType::U8: body(TypeTag<uint8_t>{}); break;
      default: ec.fail("unsupported dtype");
    }
  }

 private:
  PKind k_;
  WindowAttrs w_;
  DType t_;
  bool cip_;
  int64_t p_, storage_order_;
};

template <PKind K>
KernelBuilder pool_builder() {
  return [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(1, 1);
    if (K == PKind::Max) ctx.expect_dtype(0, {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I8, DType::U8});
    else ctx.expect_dtype(0, {DType::F32, DType::F64, DType::F16, DType::BF16});
    const auto& at = ctx.attrs();
    WindowAttrs w;
    w.kernel = at.req_ints("kernel_shape");
    w.nd = w.kernel.size();
    if (w.nd < 1 || w.nd > 3) ctx.unsupported("pooling over " + std::to_string(w.nd) + " spatial dims (1 to 3 supported)");
    read_window_attrs(ctx, w);
    const int64_t so = at.get_int("storage_order", 0);
    const DType t = ctx.input_dtype(0);
    std::optional<std::vector<int64_t>> shape;
    if (ctx.input(0).shape && ctx.input(0).shape->size() == w.nd + 2)
      shape = window_static_shape(w, ctx.input(0), (*ctx.input(0).shape)[1]);
    ctx.set_output(0, t, shape);
    if (K == PKind::Max && ctx.num_outputs() > 1) ctx.set_output(1, DType::I64, shape);
    return std::make_unique<PoolKernel>(K, std::move(w), t, at.get_int("count_include_pad", 0) != 0, at.get_int("p", 2), so);
  };
}

}  // namespace

QUIVER_REGISTER_OPS(pool) {
  registry.add({"", "MaxPool", pool_builder<PKind::Max>()});
  registry.add({"", "AveragePool", pool_builder<PKind::Avg>()});
  registry.add({"", "LpPool", pool_builder<PKind::Lp>()});
}

}  // namespace quiver::onnx
