// ai.quiver::EdgeConv(x, f, idx, s, W, b, [W1, b1, ..., WL, bL]) attributes k (and a fused
// activation), and with the rest of the block acts / alphas / betas / mean_keepdims: made by the code
// emitter's fusion pass (onnx/fusion.cpp, fuse_edge_conv and fuse_edge_mean) from ParticleNet's edge
// features, their 1x1 convolutions and the mean over the edges, never found in a model file:
//   T = Tile(x [N, C, H, d], [1, 1, 1, k]); G = Transpose(Reshape(Gather(f [C, M], idx, axis 1), s), 1,0,2,3)
//   y = act(Conv(Concat(T, G - T, axis 1), W [O, 2C, 1, 1], b))            [N, O, H, d * k]
// and, with mean_keepdims, y_l = acts[l](Conv(y_{l-1}, W_l [O_l, O_{l-1}, 1, 1], b_l)) for l = 1..L, then
// ReduceMean(y_L, axis 3, keepdims = mean_keepdims)                        [N, O_L, H (, 1)]
// G must have T's dims (the Sub does not broadcast): the step fails naming itself otherwise.
// The CPU engine fuses the edge features and their first Conv too (default numerics, without the
// block) and runs EdgeConvKernel below: (W1 - W2) x + W2 f as two products over all points and one
// gather-add over the edges. The block form exists only in plans for the code emitter (rt::edge_mean, a
// tile of points at a time; the emitter's edge step is rt::edge_conv); for it, and for tests, the CPU
// kernel computes the definition as written.
#include "onnx/blas.hpp"
#include "onnx/emit.hpp"
#include "onnx/numerics.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/ops/shape_ops.hpp"
#include "onnx/simd.hpp"

#include <cstring>
#include <limits>

namespace quiver::onnx {

namespace {

// The gathered neighbours' dims G = Transpose(Reshape([C, idx dims], s), 1,0,2,3) must be T's.
void check_dims(const Tensor& x, const Tensor& f, const Tensor& idx, const std::vector<int64_t>& s, int64_t C,
                int64_t k, ExecContext& ec) {
  if (x.rank() != 4 || x.dim(1) != C) ec.fail("points must be [N, " + std::to_string(C) + ", H, W], got " + dims_to_string(x.dims()));
  if (f.rank() != 2 || f.dim(0) != C) ec.fail("features must be [" + std::to_string(C) + ", M], got " + dims_to_string(f.dims()));
  std::vector<int64_t> g{C};
  g.insert(g.end(), idx.dims().begin(), idx.dims().end());
  const std::vector<int64_t> r = reshape_dims(g, s, false, &ec, nullptr);
  if (r.size() != 4 || r[0] != C || r[1] != x.dim(0) || r[2] != x.dim(2) || r[3] != x.dim(3) * k)
    ec.fail("gathered neighbours " + dims_to_string(r) + " (before the transpose) do not match the tiled points " +
            dims_to_string(x.dims()) + " x " + std::to_string(k));
}

// The layers after the EdgeConv and the mean (attribute mean_keepdims present).
struct Block {
  std::vector<std::shared_ptr<const Tensor>> W, b;  // W_l [O_l, O_{l-1}, 1, 1], b_l [O_l]
  std::vector<ActivationSpec> acts;
  bool keepdims = false;
};

// Reads the block's layers from the node, checking what the fusion pass promises.
Block read_block(const BuildContext& ctx, int64_t O0) {
  Block blk;
  blk.keepdims = ctx.attrs().get_int("mean_keepdims", 0) != 0;
  if (ctx.num_inputs() < 6 || (ctx.num_inputs() - 6) % 2 != 0) ctx.fail("a block needs b and (W, b) pairs");
  const size_t L = (ctx.num_inputs() - 6) / 2;
  blk.acts = layer_activations(ctx, L);
  int64_t ch = O0;
  for (size_t l = 0; l < L; ++l) {
    const ValueInfo& w = ctx.input(6 + 2 * l);
    const ValueInfo& b = ctx.input(7 + 2 * l);
    if (!w.constant || w.constant->dtype() != DType::F32 || w.constant->rank() != 4 || w.constant->dim(1) != ch ||
        w.constant->dim(2) != 1 || w.constant->dim(3) != 1)
      ctx.fail("layer " + std::to_string(l + 1) + ": W must be constant float [O, " + std::to_string(ch) + ", 1, 1]");
    ch = w.constant->dim(0);
    if (!b.constant || b.constant->dtype() != DType::F32 || b.constant->numel() != ch)
      ctx.fail("layer " + std::to_string(l + 1) + ": b must be constant float [" + std::to_string(ch) + "]");
    blk.W.push_back(w.constant);
    blk.b.push_back(b.constant);
  }
  if (!ctx.has_input(5) || !ctx.input(5).constant || ctx.input(5).constant->numel() != O0)
    ctx.fail("b must be constant float [" + std::to_string(O0) + "]");
  return blk;
}

// One image's rows of y for one output channel o: y[h][r d + e] = act(bo + u[h d + e] + v[ix[h][r d + e]])
// for the H points h, the k repeats r of the d tiled values e; u = (W1 - W2) x of the image's points
// and v = W2 f, both row o. Default numerics only: the sum's order differs from the Conv's.
QUIVER_HOT
void edge_gather_add(float bo, const float* u, const float* v, const int32_t* ix, int64_t H, int64_t d, int64_t k,
                     bool relu, float* y) {
  const int64_t Kt = d * k;
  for (int64_t h = 0; h < H; ++h, ix += Kt, y += Kt) {
    if (d == 1) {
      const float s = bo + u[h];
      if (relu) {
        for (int64_t j = 0; j < k; ++j) {
          const float t = s + v[ix[j]];
          y[j] = t > 0.f ? t : 0.f;
        }
      } else {
        for (int64_t j = 0; j < k; ++j) y[j] = s + v[ix[j]];
      }
      continue;
    }
    for (int64_t r = 0; r < k; ++r)
      for (int64_t e = 0; e < d; ++e) {
        const float t = bo + u[h * d + e] + v[ix[r * d + e]];
        y[r * d + e] = relu && !(t > 0.f) ? 0.f : t;
      }
  }
}

// The CPU engine's kernel for the edge features and their first Conv (no block): since
// W1 x + W2 (f - x) = (W1 - W2) x + W2 f, one product U = (W1 - W2) [C, N H d] over the points (x's
// rows stacked per channel) and one V = W2 f [C, M] over the features, then each edge's output is
// U of its point + V of its neighbour: k times fewer multiply-adds than the Conv over the [N, 2C, H,
// d k] concatenation, and none of the Tile / Gather / Sub / Concat tensors.
class EdgeConvKernel final : public Kernel {
 public:
  EdgeConvKernel(std::shared_ptr<const Tensor> W, int64_t O, int64_t C, int64_t k, ActivationSpec act, Blas blas)
      : W_(std::move(W)), O_(O), C_(C), k_(k), act_(act), blas_(blas), wd_(Tensor::empty(DType::F32, {O, C})) {
    const float* w = W_->data<float>();
    for (int64_t o = 0; o < O; ++o)
      for (int64_t c = 0; c < C; ++c) wd_.data<float>()[o * C + c] = w[o * 2 * C + c] - w[o * 2 * C + C + c];
  }

  void run(ExecContext& ec) const override {
    const Tensor& x = ec.input(0);
    const Tensor& f = ec.input(1);
    const Tensor& idx = ec.input(2);
    const int64_t C = C_, O = O_, k = k_;
    check_dims(x, f, idx, read_ints(ec.input(3)), C, k, ec);
    const int64_t N = x.dim(0), H = x.dim(2), d = x.dim(3), Kt = d * k, M = f.dim(1), Q = N * H * d;
    const float* b = ec.has_input(5) ? ec.input(5).data<float>() : nullptr;
    if (b && ec.input(5).numel() != O) ec.fail("B must have " + std::to_string(O) + " values");
    if (M > std::numeric_limits<int32_t>::max()) ec.fail("features must have fewer than 2^31 columns");
    float* y = ec.output(0, DType::F32, {N, O, H, Kt}).data<float>();
    if (N * H * Kt == 0 || O == 0) return;
    // Scratch: U [O, Q], V [O, M], x stacked [C, Q] (N > 1), the indices as int32 in [0, M).
    const auto pad = [](int64_t n) { return (n + 15) / 16 * 16; };
    const int64_t xs = N > 1 ? pad(C * Q) : 0;
    float* U = static_cast<float*>(ec.scratch(sizeof(float) * static_cast<size_t>(pad(O * Q) + pad(O * M) + xs) +
                                              sizeof(int32_t) * static_cast<size_t>(N * H * Kt)));
    float* V = U + pad(O * Q);
    float* X = V + pad(O * M);
    int32_t* ix = reinterpret_cast<int32_t*>(X + xs);
    const int64_t E = N * H * Kt;
    for (int64_t i = 0; i < E; ++i) {
      const int64_t v = idx.dtype() == DType::I64 ? idx.data<int64_t>()[i] : idx.data<int32_t>()[i];
      if (v < -M || v >= M) ec.fail("index " + std::to_string(v) + " out of range [" + std::to_string(-M) + ", " + std::to_string(M) + ")", "indices");
      ix[i] = static_cast<int32_t>(v < 0 ? v + M : v);
    }
    const float* xp = x.data<float>();
    if (N > 1) {
      const int64_t Hd = H * d;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) std::memcpy(X + c * Q + n * Hd, xp + (n * C + c) * Hd, sizeof(float) * static_cast<size_t>(Hd));
      xp = X;
    }
    GemmArgs u;
    u.M = O; u.N = Q; u.K = C;
    u.A = wd_.data<float>(); u.lda = C;
    u.B = xp; u.ldb = Q;
    u.C = U; u.ldc = Q;
    blas_.gemm(u);
    GemmArgs g;
    g.M = O; g.N = M; g.K = C;
    g.A = W_->data<float>() + C; g.lda = 2 * C;
    g.B = f.data<float>(); g.ldb = M;
    g.C = V; g.ldc = M;
    blas_.gemm(g);
    const bool relu = act_.kind == Activation::Relu;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o)
        edge_gather_add(b ? b[o] : 0.f, U + o * Q + n * H * d, V + o * M, ix + n * H * Kt, H, d, k, relu,
                        y + (n * O + o) * H * Kt);
    if (!relu && act_.kind != Activation::None) blas_.activation(y, N * O, H * Kt, H * Kt, act_);
  }

 private:
  std::shared_ptr<const Tensor> W_;
  int64_t O_, C_, k_;
  ActivationSpec act_;
  Blas blas_;
  Tensor wd_;  // W1 - W2 [O, C]
};

}  // namespace

// quiver compile (default numerics; the fusion is off in reproducible mode): rt::edge_conv, or with
// the rest of the block rt::edge_mean.
void emit_edge_conv(Emit& e) {
  if (e.reproducible()) e.refuse("EdgeConv has no reproducible emission");
  if (e.in(0).dtype != DType::F32 || e.in(1).dtype != DType::F32) e.refuse("EdgeConv is emitted for float only");
  if (e.in(2).dtype != DType::I64 && e.in(2).dtype != DType::I32) e.refuse("indices must be int32 or int64");
  if (!e.in(4).constant || (e.has_input(5) && !e.in(5).constant)) e.refuse("weights computed at run time");
  const Tensor& w = *e.in(4).constant;
  const int64_t O = w.dim(0), C = w.dim(1) / 2, k = e.attrs().get_int("k", 1);
  const bool block = e.attrs().has("mean_keepdims");
  const std::string Cs = std::to_string(C), Os = std::to_string(O), ks = std::to_string(k);
  e.read_values(3);
  e.dims_only(3);
  e.shape("if (I0.r != 4 || I0.d[1] != " + Cs + ") fail(\"points must be [N, " + Cs + ", H, W]\");\n" +
          "if (I1.r != 2 || I1.d[0] != " + Cs + ") fail(\"features must be [" + Cs + ", M]\");\n" +
          "if (I3.n() != 4) fail(\"the neighbours' shape must have 4 values\");\n"
          "rt::Shp g{};\ng.r = I2.r + 1;\ng.d[0] = " + Cs + ";\nfor (int j = 0; j < I2.r; ++j) g.d[j + 1] = I2.d[j];\n"
          "rt::Shp s{};\nif (const char* m = rt::reshape_dims(g, x3, 4, false, s)) fail(m);\n"
          "if (s.d[0] != " + Cs + " || s.d[1] != I0.d[0] || s.d[2] != I0.d[2] || s.d[3] != I0.d[3] * " + ks +
          ") fail(\"gathered neighbours do not match the tiled points\");\n");
  const bool i64 = e.in(2).dtype == DType::I64;
  if (!block) {
    // wd = W1 - W2 (the columns for x_i minus those for x_j - x_i).
    Tensor wd = Tensor::empty(DType::F32, {O, C});
    for (int64_t o = 0; o < O; ++o)
      for (int64_t c = 0; c < C; ++c)
        wd.data<float>()[o * C + c] = w.data<float>()[o * 2 * C + c] - w.data<float>()[o * 2 * C + C + c];
    const std::string kd = e.add_const(std::move(wd));
    e.shape("O0.r = 4;\nO0.d[0] = I0.d[0];\nO0.d[1] = " + Os + ";\nO0.d[2] = I0.d[2];\nO0.d[3] = I0.d[3] * " + ks + ";\n");
    e.scratch("rt::gemm_pack_bytes(" + Cs + ") + 4 * " + Os + " * (I1.d[1] + I0.d[2] * I0.d[3]) + 4 * I0.d[2] * O0.d[3]");
    e.compute(emit_activation(e.node()) + "rt::EdgeConvArgs a;\na.N = I0.d[0];\na.C = " + Cs +
              ";\na.H = I0.d[2];\na.d = I0.d[3];\na.Kt = O0.d[3];\na.M = I1.d[1];\na.O = " + Os +
              ";\na.r = x0;\na.f = x1;\na." + (i64 ? "idx64" : "idx32") + " = x2;\na.wd = " + kd + ";\na.w2 = x4 + " + Cs +
              ";\na.bias = " + (e.has_input(5) ? "x5" : "nullptr") +
              ";\na.y = y0;\na.pack = static_cast<float*>(scratch);\na.z = a.pack + rt::gemm_pack_bytes(" + Cs +
              ") / 4;\na.ix = reinterpret_cast<int32_t*>(a.z + a.O * (a.M + a.H * a.d));\na.act = act;\n"
              "if (!rt::edge_conv(a)) fail(\"index out of range\");\n");
    e.comment("EdgeConv: the Tile/Gather/Transpose/Sub/Concat edge features and their 1x1 Conv, as (W1 - W2) x + W2 f");
    return;
  }
  const Block blk = read_block(e.node(), O);
  const size_t L = blk.W.size();
  std::vector<int64_t> chans{O};
  for (const auto& W : blk.W) chans.push_back(W->dim(0));
  int64_t Omax = 0;
  for (int64_t c : chans) Omax = c > Omax ? c : Omax;
  const int64_t OL = chans.back();
  // B operands packed at compile time: (W1 - W2)^T and W2^T as [C][O], each layer's W^T as [O_{l-1}][O_l].
  Tensor wd = Tensor::empty(DType::F32, {C, O});
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      wd.data<float>()[c * O + o] = w.data<float>()[o * 2 * C + c] - w.data<float>()[o * 2 * C + C + c];
  const std::string wdp = e.add_packed_b(wd.data<float>(), C, O, O, 1);
  const std::string w2p = e.add_packed_b(w.data<float>() + C, C, O, 1, 2 * C);
  e.dims_only(4);  // only the packed forms are stored
  for (size_t l = 0; l < L; ++l) e.dims_only(6 + 2 * l);
  std::string wps, bs, acts, os = std::to_string(O);
  for (size_t l = 0; l < L; ++l) {
    const int64_t in = chans[l], out = chans[l + 1];
    wps += (l ? ", " : "") + e.add_packed_b(blk.W[l]->data<float>(), in, out, 1, in);
    bs += std::string(l ? ", " : "") + "x" + std::to_string(7 + 2 * l);
    acts += (l ? ", " : "") + act_literal(blk.acts[l]);
    os += ", " + std::to_string(out);
  }
  const std::string Ls = std::to_string(L), OLs = std::to_string(OL);
  e.shape("O0.r = " + std::string(blk.keepdims ? "4" : "3") + ";\nO0.d[0] = I0.d[0];\nO0.d[1] = " + OLs +
          ";\nO0.d[2] = I0.d[2];\n" + (blk.keepdims ? "O0.d[3] = 1;\n" : ""));
  e.scratch("4 * rt::edge_mean_floats(I0.d[2], I0.d[3], I0.d[3] * " + ks + ", I1.d[1], " + Os + ", " + std::to_string(Omax) + ")");
  std::string code = emit_activation(e.node()) + "static const int64_t O[] = {" + os + "};\n";
  if (L) {
    code += "const float* const Wp[] = {" + wps + "};\nconst float* const b[] = {" + bs + "};\n" +
            "static const rt::Act acts[] = {" + acts + "};\n";
  }
  code += "rt::EdgeMeanArgs a;\na.N = I0.d[0];\na.C = " + Cs + ";\na.H = I0.d[2];\na.d = I0.d[3];\na.Kt = I0.d[3] * " + ks +
          ";\na.M = I1.d[1];\na.L = " + Ls + ";\na.O = O;\na.r = x0;\na.f = x1;\na." + (i64 ? "idx64" : "idx32") +
          " = x2;\na.wdp = " + wdp + ";\na.w2p = " + w2p + ";\na.bias = x5;\na.act = act;\n" +
          (L ? "a.Wp = Wp;\na.b = b;\na.acts = acts;\n" : "") +
          "a.y = y0;\na.work = static_cast<float*>(scratch);\nif (!rt::edge_mean(a)) fail(\"index out of range\");\n";
  e.compute(code);
  e.comment("EdgeConv block: the edge features, their 1x1 Conv as (W1 - W2) x + W2 f, " + Ls +
            " more 1x1 Conv(s) and the mean over the edges, " + "a tile of points at a time (no [N, O, P, k] tensor)");
}

QUIVER_REGISTER_OPS(edgeconv) {
  registry.add({"ai.quiver", "EdgeConv", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const bool block = ctx.attrs().has("mean_keepdims");
                  if (!block) ctx.expect_inputs(5, 6);
                  ctx.expect_dtype(0, {DType::F32});
                  ctx.expect_dtype(1, {DType::F32});
                  ctx.expect_dtype(2, {DType::I32, DType::I64});
                  ctx.expect_dtype(3, {DType::I64});
                  const ValueInfo& wi = ctx.input(4);
                  if (!wi.constant || wi.constant->dtype() != DType::F32 || wi.constant->rank() != 4 ||
                      wi.constant->dim(1) % 2 != 0 || wi.constant->dim(2) != 1 || wi.constant->dim(3) != 1)
                    ctx.fail("W must be constant float [O, 2C, 1, 1]");
                  const std::shared_ptr<const Tensor> W = wi.constant;
                  const int64_t O = W->dim(0), C = W->dim(1) / 2, k = ctx.attrs().get_int("k", 1);
                  if (k < 1) ctx.fail("k must be >= 1");
                  const Block blk = block ? read_block(ctx, O) : Block{};
                  const int64_t OL = blk.W.empty() ? O : blk.W.back()->dim(0);
                  std::optional<std::vector<int64_t>> shape;
                  if (const auto& xs = ctx.input(0).shape; xs && xs->size() == 4) {
                    if (!block) shape = std::vector<int64_t>{(*xs)[0], O, (*xs)[2], (*xs)[3] < 0 ? -1 : (*xs)[3] * k};
                    else if (blk.keepdims) shape = std::vector<int64_t>{(*xs)[0], OL, (*xs)[2], 1};
                    else shape = std::vector<int64_t>{(*xs)[0], OL, (*xs)[2]};
                  }
                  ctx.set_output(0, DType::F32, shape);
                  const ActivationSpec act = fused_activation(ctx);
                  if (!block && !ctx.target().reproducible())
                    return std::make_unique<EdgeConvKernel>(W, O, C, k, act, Blas(ctx.target()));
                  return make_kernel([W, O, C, k, act, block, blk, OL](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& f = ec.input(1);
                    const Tensor& idx = ec.input(2);
                    check_dims(x, f, idx, read_ints(ec.input(3)), C, k, ec);
                    const int64_t N = x.dim(0), H = x.dim(2), d = x.dim(3), Kt = d * k, M = f.dim(1);
                    const float* b = ec.has_input(5) ? ec.input(5).data<float>() : nullptr;
                    if (b && ec.input(5).numel() != O) ec.fail("B must have " + std::to_string(O) + " values");
                    std::vector<int64_t> ix(static_cast<size_t>(idx.numel()));
                    for (int64_t i = 0; i < idx.numel(); ++i) {
                      int64_t v = idx.dtype() == DType::I64 ? idx.data<int64_t>()[i] : idx.data<int32_t>()[i];
                      if (v < -M || v >= M) ec.fail("index " + std::to_string(v) + " out of range [" + std::to_string(-M) + ", " + std::to_string(M) + ")", "indices");
                      ix[static_cast<size_t>(i)] = v < 0 ? v + M : v;
                    }
                    std::vector<float> edges;
                    float* yp = nullptr;
                    if (block) {
                      edges.resize(static_cast<size_t>(N * O * H * Kt));
                      yp = edges.data();
                    } else {
                      yp = ec.output(0, DType::F32, {N, O, H, Kt}).data<float>();
                    }
                    const float* wp = W->data<float>();
                    const float* xp = x.data<float>();
                    const float* fp = f.data<float>();
                    for (int64_t n = 0; n < N; ++n)
                      for (int64_t h = 0; h < H; ++h)
                        for (int64_t j = 0; j < Kt; ++j) {
                          const int64_t col = ix[static_cast<size_t>((n * H + h) * Kt + j)];
                          for (int64_t o = 0; o < O; ++o) {
                            float s = b ? b[o] : 0.f;
                            for (int64_t c = 0; c < C; ++c) {
                              const float t = xp[((n * C + c) * H + h) * d + j % d];
                              s += wp[o * 2 * C + c] * t + wp[o * 2 * C + C + c] * (fp[c * M + col] - t);
                            }
                            yp[((n * O + o) * H + h) * Kt + j] = s;
                          }
                        }
                    const int64_t E = N * O * H * Kt;
                    apply_activation(yp, 1, E, E, act);
                    if (!block) return;
                    // The layers as written: y_l[n][o][e] = act_l(b_l[o] + sum_c W_l[o][c] y_{l-1}[n][c][e]).
                    int64_t ch = O;
                    for (size_t l = 0; l < blk.W.size(); ++l) {
                      const int64_t out = blk.W[l]->dim(0), P = H * Kt;
                      std::vector<float> next(static_cast<size_t>(N * out * P));
                      const float* wl = blk.W[l]->data<float>();
                      const float* bl = blk.b[l]->data<float>();
                      for (int64_t n = 0; n < N; ++n)
                        for (int64_t o = 0; o < out; ++o)
                          for (int64_t q = 0; q < P; ++q) {
                            float s = bl[o];
                            for (int64_t c = 0; c < ch; ++c) s += wl[o * ch + c] * edges[static_cast<size_t>((n * ch + c) * P + q)];
                            next[static_cast<size_t>((n * out + o) * P + q)] = s;
                          }
                      apply_activation(next.data(), 1, N * out * P, N * out * P, blk.acts[l]);
                      edges.swap(next);
                      ch = out;
                    }
                    std::vector<int64_t> od{N, OL, H};
                    if (blk.keepdims) od.push_back(1);
                    float* y = ec.output(0, DType::F32, od).data<float>();
                    for (int64_t r = 0; r < N * OL * H; ++r) {
                      float s = 0.f;
                      for (int64_t j = 0; j < Kt; ++j) s += edges[static_cast<size_t>(r * Kt + j)];
                      y[r] = s / static_cast<float>(Kt);
                    }
                  });
                }});
}

QUIVER_REGISTER_EMITTERS(edgeconv) {
  emitters.add("ai.quiver", "EdgeConv", emit_edge_conv);
}
}  // namespace quiver::onnx
