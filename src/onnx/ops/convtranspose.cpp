// ConvTranspose (1-D/2-D/3-D, groups, dilations, strides, pads/auto_pad, output_padding,
// output_shape, optional bias). Per image and group: col[M_g*k, L_in] = W_g^T x X_g (engine GEMM,
// W^T packed at load when constant), then col2im scatters the columns into Y.
#include "onnx/blas.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/ops/nn_common.hpp"

namespace quiver::onnx {

namespace {

class ConvTransposeKernel final : public Kernel {
 public:
  ConvTransposeKernel(size_t nd, std::vector<int64_t> kernel, std::vector<int64_t> strides, std::vector<int64_t> dil,
                      std::vector<int64_t> pads, std::vector<int64_t> out_pad, std::vector<int64_t> out_shape, AutoPad ap,
                      int64_t group, std::shared_ptr<const std::vector<float>> packed, ActivationSpec act)
      : nd_(nd), kernel_(std::move(kernel)), strides_(std::move(strides)), dil_(std::move(dil)), pads_(std::move(pads)),
        out_pad_(std::move(out_pad)), out_shape_(std::move(out_shape)), ap_(ap), group_(group), packed_(std::move(packed)),
        act_(act) {}

  void run(ExecContext& ec) const override {
    const Tensor& x = ec.input(0);
    const Tensor& w = ec.input(1);
    const size_t nd = nd_;
    if (x.rank() != nd + 2) ec.fail("X must have rank " + std::to_string(nd + 2) + ", got " + dims_to_string(x.dims()));
    if (w.rank() != nd + 2) ec.fail("W must have rank " + std::to_string(nd + 2) + ", got " + dims_to_string(w.dims()));
    const int64_t N = x.dim(0), C = x.dim(1);
    if (w.dim(0) != C) ec.fail("W has " + std::to_string(w.dim(0)) + " input channels, X has " + std::to_string(C));
    if (C % group_ != 0) ec.fail("channels not divisible by group");
    const int64_t Cg = C / group_, Mg = w.dim(1), M = Mg * group_;
    int64_t k[3], in[3], out[3], pb[3];
    int64_t ksz = 1;
    for (size_t i = 0; i < nd; ++i) {
      k[i] = kernel_.empty() ? w.dim(2 + i) : kernel_[i];
      if (k[i] != w.dim(2 + i)) ec.fail("W spatial dims " + dims_to_string(w.dims()) + " differ from kernel_shape");
      ksz *= k[i];
      in[i] = x.dim(2 + i);
      const int64_t ek = (k[i] - 1) * dil_[i] + 1;
      const int64_t full = strides_[i] * (in[i] - 1) + out_pad_[i] + ek;
      if (!out_shape_.empty() || ap_ == AutoPad::SameUpper || ap_ == AutoPad::SameLower) {
        out[i] = !out_shape_.empty() ? out_shape_[out_shape_.size() - nd + i] : in[i] * strides_[i];
        const int64_t total = full - out[i];  // may be negative (output_shape larger: zero-extended at the end)
        const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);  // floor division
        if (ap_ == AutoPad::SameUpper) pb[i] = half;
        else pb[i] = total - half;
      } else if (ap_ == AutoPad::Valid) {
        pb[i] = 0;
        out[i] = full;
      } else {
        pb[i] = pads_[i];
        out[i] = full - pads_[i] - pads_[i + nd];
      }
      if (out[i] < 1) ec.fail("output spatial dim " + std::to_string(i) + " would be " + std::to_string(out[i]));
    }
    std::vector<int64_t> yd = {N, M};
    for (size_t i = 0; i < nd; ++i) yd.push_back(out[i]);
    Tensor& y = ec.output(0, DType::F32, yd);
    std::fill_n(y.data<float>(), y.numel(), 0.0f);
    // Geometry of the forward conv Y -> X: "in" = Y spatial, "out" = X spatial.
    Geom3 g;
    make_geom3(nd, out, in, k, strides_.data(), dil_.data(), pb, g);
    const int64_t Lx = g.out_size(), Ly = g.in_size(), Kr = Mg * ksz;
    const size_t wt_size = packed_ ? 0 : static_cast<size_t>(group_ * Kr * Cg);
    float* buf = static_cast<float*>(ec.scratch(sizeof(float) * (static_cast<size_t>(Kr * Lx) + wt_size + 16)));
    float* col = buf;
    const float* wt = packed_ ? packed_->data() : buf + Kr * Lx;
    if (!packed_) pack(w.data<float>(), Cg, Kr, group_, buf + Kr * Lx);
    const float* X = x.data<float>();
    float* Y = y.data<float>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t gi = 0; gi < group_; ++gi) {
        GemmArgs ga;
        ga.M = Kr; ga.N = Lx; ga.K = Cg;
        ga.A = wt + gi * Kr * Cg; ga.lda = Cg;
        ga.B = X + (n * C + gi * Cg) * Lx; ga.ldb = Lx;
        ga.C = col; ga.ldc = Lx;
        gemm(ga);
        col2im3(col, Mg, g, Y + (n * M + gi * Mg) * Ly);
      }
    if (ec.has_input(2) && ec.input_ptr(2)) {
      const Tensor& b = ec.input(2);
      if (b.numel() != M) ec.fail("B has " + std::to_string(b.numel()) + " values, expected " + std::to_string(M));
      const float* bp = b.data<float>();
      for (int64_t n = 0; n < N; ++n)
        for (int64_t m = 0; m < M; ++m) {
          float* yp = Y + (n * M + m) * Ly;
          for (int64_t i = 0; i < Ly; ++i) yp[i] += bp[m];
        }
    }
    if (act_.kind != Activation::None) apply_activation(Y, 1, y.numel(), y.numel(), act_);
  }

  // W [C, Mg*k] (group blocks of Cg rows) -> per group W_g^T [Mg*k, Cg].
  static void pack(const float* w, int64_t Cg, int64_t Kr, int64_t group, float* dst) {
    for (int64_t gi = 0; gi < group; ++gi)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t r = 0; r < Kr; ++r) dst[gi * Kr * Cg + r * Cg + c] = w[(gi * Cg + c) * Kr + r];
  }

 private:
  size_t nd_;
  std::vector<int64_t> kernel_, strides_, dil_, pads_, out_pad_, out_shape_;
  AutoPad ap_;
  int64_t group_;
  std::shared_ptr<const std::vector<float>> packed_;
  ActivationSpec act_;
};

}  // namespace

QUIVER_REGISTER_OPS(convtranspose) {
  registry.add({"", "ConvTranspose", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  ctx.expect_dtype(0, {DType::F32});
                  ctx.expect_dtype(1, {DType::F32});
                  if (ctx.has_input(2)) ctx.expect_dtype(2, {DType::F32});
                  const auto& at = ctx.attrs();
                  std::vector<int64_t> kernel = at.get_ints("kernel_shape");
                  const ValueInfo& wi = ctx.input(1);
                  const ValueInfo& xi = ctx.input(0);
                  size_t nd = 0;
                  if (!kernel.empty()) nd = kernel.size();
                  else if (wi.shape && wi.shape->size() >= 3) nd = wi.shape->size() - 2;
                  else if (xi.shape && xi.shape->size() >= 3) nd = xi.shape->size() - 2;
                  else ctx.unsupported("cannot tell the spatial rank");
                  if (nd < 1 || nd > 3) ctx.unsupported("ConvTranspose with " + std::to_string(nd) + " spatial dims");
                  auto strides = at.get_ints("strides", std::vector<int64_t>(nd, 1));
                  auto dil = at.get_ints("dilations", std::vector<int64_t>(nd, 1));
                  auto pads = at.get_ints("pads", std::vector<int64_t>(2 * nd, 0));
                  auto out_pad = at.get_ints("output_padding", std::vector<int64_t>(nd, 0));
                  auto out_shape = at.get_ints("output_shape");
                  if (strides.size() != nd || dil.size() != nd || pads.size() != 2 * nd || out_pad.size() != nd)
                    ctx.fail("strides/dilations/pads/output_padding sizes do not match the spatial rank " + std::to_string(nd));
                  if (!out_shape.empty() && out_shape.size() != nd && out_shape.size() != nd + 2)
                    ctx.fail("output_shape has " + std::to_string(out_shape.size()) + " values");
                  if (!kernel.empty() && kernel.size() != nd) ctx.fail("kernel_shape size mismatch");
                  for (size_t i = 0; i < nd; ++i)
                    if (strides[i] < 1 || dil[i] < 1) ctx.fail("strides and dilations must be positive");
                  const int64_t group = at.get_int("group", 1);
                  if (group < 1) ctx.fail("group must be >= 1");
                  std::shared_ptr<const std::vector<float>> packed;
                  if (wi.constant && wi.constant->rank() == nd + 2 && wi.constant->dim(0) % group == 0) {
                    const Tensor& w = *wi.constant;
                    const int64_t Cg = w.dim(0) / group, Kr = w.numel() / w.dim(0);
                    auto p = std::make_shared<std::vector<float>>(static_cast<size_t>(w.numel()));
                    ConvTransposeKernel::pack(w.data<float>(), Cg, Kr, group, p->data());
                    packed = std::move(p);
                  }
                  ctx.set_output(0, DType::F32);
                  return std::make_unique<ConvTransposeKernel>(nd, std::move(kernel), std::move(strides), std::move(dil),
                                                               std::move(pads), std::move(out_pad), std::move(out_shape),
                                                               parse_auto_pad(ctx), group, std::move(packed),
                                                               fused_activation(ctx));
                }});
}

}  // namespace quiver::onnx
