// quiver::EdgeConv: what the fusion pass makes of ParticleNet's EdgeConv features feeding their first
// 1x1 convolution (fusion.cpp, fuse_edge_conv; CPU engine, default numerics only). The graph builds
// the [B, 2C, P, k] tensor (x_p, x_q - x_p) over the k neighbours q of every point p and convolves it
// with W = [W_c | W_d]; since W_c x_p + W_d (x_q - x_p) = (W_c - W_d) x_p + W_d x_q, two [C1, C] x
// [C, P] products per jet, U and V, and a gather give the same output with k times fewer
// multiply-adds and without the gather/tile/sub/concat tensors:
//   y[b, o, p, j] = act(bias[o] + U[b, o, p] + V[b', o, q]),   b' P + q = idx[(b P + p) k + j].
// Inputs: X [B, C, P]; idx, the neighbours' flat point indices in (jet, point, neighbour) order;
// the graph's three reshape targets (their values follow from X's shape at run time, so they are
// checked here); Wn [2 C1, C] = [W_c - W_d; W_d]; bias [C1]. Attribute k: the neighbours per point.
#include "onnx/numerics.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/ops/common.hpp"
#include "onnx/ops/shape_ops.hpp"
#include "onnx/simd.hpp"

namespace quiver::onnx {
namespace {

// One jet's rows of y for output channels [0, C1): u = U + bias per point, v = V's rows, off the
// neighbours' offsets into v (row o of V adds o * P).
QUIVER_HOT
void edge_gather_add(const float* u, const float* bias, const float* v, const int64_t* off, int64_t C1, int64_t P,
                     int64_t k, bool relu, float* y) {
  for (int64_t o = 0; o < C1; ++o) {
    const float* uo = u + o * P;
    const float* vo = v + o * P;
    const float bo = bias ? bias[o] : 0.0f;
    float* yo = y + o * P * k;
    for (int64_t p = 0; p < P; ++p) {
      const float up = uo[p] + bo;
      const int64_t* op = off + p * k;
      float* yp = yo + p * k;
      for (int64_t j = 0; j < k; ++j) {
        const float s = up + vo[op[j]];
        yp[j] = relu ? (s > 0.0f ? s : 0.0f) : s;
      }
    }
  }
}

class EdgeConvKernel final : public Kernel {
 public:
  EdgeConvKernel(int64_t k, int64_t C, int64_t C1, ActivationSpec act, Blas blas)
      : k_(k), C_(C), C1_(C1), act_(act), blas_(blas) {}

  void run(ExecContext& ec) const override {
    const Tensor& x = ec.input(0);
    const Tensor& idx = ec.input(1);
    const Tensor& wn = ec.input(5);
    const Tensor* bias = ec.has_input(6) ? &ec.input(6) : nullptr;
    if (x.rank() != 3 || x.dim(1) != C_)
      ec.fail("X must be [B, " + std::to_string(C_) + ", P], got " + dims_to_string(x.dims()));
    const int64_t B = x.dim(0), P = x.dim(2), k = k_, BP = B * P;
    if (idx.numel() != BP * k)
      ec.fail("expected " + std::to_string(BP * k) + " neighbour indices (B * P * " + std::to_string(k) + "), got " +
              std::to_string(idx.numel()));
    // The reshapes the fused nodes did: X^T [C, B, P] to [C, B P], the gathered [C, idx dims] to
    // [C, B, P, k] and X to [B, C, P, 1].
    const std::vector<int64_t> xt{C_, B, P}, xs{B, C_, P};
    std::vector<int64_t> gathered{C_};
    gathered.insert(gathered.end(), idx.dims().begin(), idx.dims().end());
    if (reshape_dims(xt, read_ints(ec.input(2)), false, &ec, nullptr) != std::vector<int64_t>{C_, BP} ||
        reshape_dims(gathered, read_ints(ec.input(3)), false, &ec, nullptr) != std::vector<int64_t>{C_, B, P, k} ||
        reshape_dims(xs, read_ints(ec.input(4)), false, &ec, nullptr) != std::vector<int64_t>{B, C_, P, 1})
      ec.fail("the EdgeConv's reshape targets do not give [C, B*P], [C, B, P, k] and [B, C, P, 1] for X " +
              dims_to_string(x.dims()) + " (load with fusion off to run the graph's own nodes)");
    if (bias && bias->numel() != C1_) ec.fail("bias must have " + std::to_string(C1_) + " values, got " + std::to_string(bias->numel()));
    Tensor& y = ec.output(0, DType::F32, {B, C1_, P, k});
    if (y.numel() == 0) return;
    // Scratch: U and V of every jet [B][2 C1][P], then the neighbours' offsets into them.
    const int64_t per_jet = 2 * C1_ * P;
    auto* uv = static_cast<float*>(ec.scratch(sizeof(float) * B * per_jet + sizeof(int64_t) * (BP * k + 16)));
    int64_t* off = reinterpret_cast<int64_t*>(uv + ((B * per_jet + 15) / 16) * 16);
    const int64_t* ix = idx.data<int64_t>();
    for (int64_t n = 0; n < BP * k; ++n) {
      int64_t g = ix[n];
      if (g < 0) g += BP;
      if (g < 0 || g >= BP) ec.fail("neighbour index " + std::to_string(ix[n]) + " outside [-" + std::to_string(BP) + ", " + std::to_string(BP) + ")");
      off[n] = g / P * per_jet + C1_ * P + g % P;  // V's row 0 of the neighbour's jet
    }
    for (int64_t b = 0; b < B; ++b) {
      GemmArgs g;
      g.M = 2 * C1_; g.N = P; g.K = C_;
      g.A = wn.data<float>(); g.lda = C_;
      g.B = x.data<float>() + b * C_ * P; g.ldb = P;
      g.C = uv + b * per_jet; g.ldc = P;
      blas_.gemm(g);
    }
    const bool relu = act_.kind == Activation::Relu;
    const float* bv = bias ? bias->data<float>() : nullptr;
    float* Y = y.data<float>();
    for (int64_t b = 0; b < B; ++b)
      edge_gather_add(uv + b * per_jet, bv, uv, off + b * P * k, C1_, P, k, relu, Y + b * C1_ * P * k);
    if (!relu && act_.kind != Activation::None) blas_.activation(Y, B * C1_, P * k, P * k, act_);
  }

 private:
  int64_t k_, C_, C1_;
  ActivationSpec act_;
  Blas blas_;
};

std::unique_ptr<Kernel> build_edge_conv(BuildContext& ctx) {
  ctx.expect_inputs(6, 7);
  ctx.expect_dtype(0, {DType::F32});
  ctx.expect_dtype(1, {DType::I64});
  for (size_t i = 2; i <= 4; ++i) ctx.expect_dtype(i, {DType::I64});
  ctx.expect_dtype(5, {DType::F32});
  const int64_t k = ctx.attrs().get_int("k", 0);
  if (k <= 0) ctx.fail("attribute k must be positive");
  const ValueInfo& w = ctx.input(5);
  if (!w.constant || w.constant->rank() != 2 || w.constant->dim(0) % 2 != 0)
    ctx.fail("Wn must be a constant [2 C1, C]", ctx.input_name(5));
  const int64_t C1 = w.constant->dim(0) / 2, C = w.constant->dim(1);
  if (ctx.has_input(6)) {
    ctx.expect_dtype(6, {DType::F32});
    const ValueInfo& b = ctx.input(6);
    if (b.shape && (b.shape->size() != 1 || (*b.shape)[0] != C1)) ctx.fail("bias must have " + std::to_string(C1) + " values", ctx.input_name(6));
  }
  const auto& xs = ctx.input(0).shape;
  const int64_t B = xs && xs->size() == 3 ? (*xs)[0] : -1, P = xs && xs->size() == 3 ? (*xs)[2] : -1;
  ctx.set_output(0, DType::F32, std::vector<int64_t>{B, C1, P, k});
  return std::make_unique<EdgeConvKernel>(k, C, C1, fused_activation(ctx), Blas(ctx.target()));
}

}  // namespace

QUIVER_REGISTER_OPS(edgeconv) { registry.add({"quiver", "EdgeConv", build_edge_conv}); }
}  // namespace quiver::onnx
