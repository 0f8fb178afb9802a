// ai.quiver::EdgeConv(x, f, idx, s, W, b) attribute k (and a fused activation): made by the code
// emitter's fusion pass (onnx/fusion.cpp, fuse_edge_conv) from ParticleNet's edge features and their
// first 1x1 convolution, never found in a model file:
//   T = Tile(x [N, C, H, d], [1, 1, 1, k]); G = Transpose(Reshape(Gather(f [C, M], idx, axis 1), s), 1,0,2,3)
//   y = act(Conv(Concat(T, G - T, axis 1), W [O, 2C, 1, 1], b))            [N, O, H, d * k]
// G must have T's dims (the Sub does not broadcast): the step fails naming itself otherwise.
// The CPU kernel computes that definition as written (the fused node exists only in plans for the
// code emitter, whose step computes (W1 - W2) x + W2 f: rt::edge_conv).
#include "onnx/blas.hpp"
#include "onnx/emit.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/ops/shape_ops.hpp"

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

}  // namespace

// quiver compile (default numerics; the fusion is off in reproducible mode): rt::edge_conv.
void emit_edge_conv(Emit& e) {
  if (e.reproducible()) e.refuse("EdgeConv has no reproducible emission");
  if (e.in(0).dtype != DType::F32 || e.in(1).dtype != DType::F32) e.refuse("EdgeConv is emitted for float only");
  if (e.in(2).dtype != DType::I64 && e.in(2).dtype != DType::I32) e.refuse("indices must be int32 or int64");
  if (!e.in(4).constant || (e.has_input(5) && !e.in(5).constant)) e.refuse("weights computed at run time");
  const Tensor& w = *e.in(4).constant;
  const int64_t O = w.dim(0), C = w.dim(1) / 2, k = e.attrs().get_int("k", 1);
  // wd = W1 - W2 (the columns for x_i minus those for x_j - x_i).
  Tensor wd = Tensor::empty(DType::F32, {O, C});
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      wd.data<float>()[o * C + c] = w.data<float>()[o * 2 * C + c] - w.data<float>()[o * 2 * C + C + c];
  const std::string kd = e.add_const(std::move(wd));
  const std::string Cs = std::to_string(C), Os = std::to_string(O), ks = std::to_string(k);
  e.read_values(3);
  e.dims_only(3);
  e.shape("if (I0.r != 4 || I0.d[1] != " + Cs + ") fail(\"points must be [N, " + Cs + ", H, W]\");\n" +
          "if (I1.r != 2 || I1.d[0] != " + Cs + ") fail(\"features must be [" + Cs + ", M]\");\n" +
          "if (I3.n() != 4) fail(\"the neighbours' shape must have 4 values\");\n"
          "rt::Shp g{};\ng.r = I2.r + 1;\ng.d[0] = " + Cs + ";\nfor (int j = 0; j < I2.r; ++j) g.d[j + 1] = I2.d[j];\n"
          "rt::Shp s{};\nif (const char* m = rt::reshape_dims(g, x3, 4, false, s)) fail(m);\n"
          "if (s.d[0] != " + Cs + " || s.d[1] != I0.d[0] || s.d[2] != I0.d[2] || s.d[3] != I0.d[3] * " + ks +
          ") fail(\"gathered neighbours do not match the tiled points\");\n"
          "O0.r = 4;\nO0.d[0] = I0.d[0];\nO0.d[1] = " + Os + ";\nO0.d[2] = I0.d[2];\nO0.d[3] = I0.d[3] * " + ks + ";\n");
  e.scratch("rt::gemm_pack_bytes(" + Cs + ") + 4 * " + Os + " * (I1.d[1] + I0.d[2] * I0.d[3]) + 4 * I0.d[2] * O0.d[3]");
  const bool i64 = e.in(2).dtype == DType::I64;
  e.compute(emit_activation(e.node()) + "rt::EdgeConvArgs a;\na.N = I0.d[0];\na.C = " + Cs +
            ";\na.H = I0.d[2];\na.d = I0.d[3];\na.Kt = O0.d[3];\na.M = I1.d[1];\na.O = " + Os +
            ";\na.r = x0;\na.f = x1;\na." + (i64 ? "idx64" : "idx32") + " = x2;\na.wd = " + kd + ";\na.w2 = x4 + " + Cs +
            ";\na.bias = " + (e.has_input(5) ? "x5" : "nullptr") +
            ";\na.y = y0;\na.pack = static_cast<float*>(scratch);\na.z = a.pack + rt::gemm_pack_bytes(" + Cs +
            ") / 4;\na.ix = reinterpret_cast<int32_t*>(a.z + a.O * (a.M + a.H * a.d));\na.act = act;\n"
            "if (!rt::edge_conv(a)) fail(\"index out of range\");\n");
  e.comment("EdgeConv: the Tile/Gather/Transpose/Sub/Concat edge features and their 1x1 Conv, as (W1 - W2) x + W2 f");
}

QUIVER_REGISTER_OPS(edgeconv) {
  registry.add({"ai.quiver", "EdgeConv", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(5, 6);
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
                  std::optional<std::vector<int64_t>> shape;
                  if (const auto& xs = ctx.input(0).shape; xs && xs->size() == 4)
                    shape = std::vector<int64_t>{(*xs)[0], O, (*xs)[2], (*xs)[3] < 0 ? -1 : (*xs)[3] * k};
                  ctx.set_output(0, DType::F32, shape);
                  const ActivationSpec act = fused_activation(ctx);
                  return make_kernel([W, O, C, k, act](ExecContext& ec) {
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
                    Tensor& y = ec.output(0, DType::F32, {N, O, H, Kt});
                    const float* wp = W->data<float>();
                    const float* xp = x.data<float>();
                    const float* fp = f.data<float>();
                    float* yp = y.data<float>();
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
                    apply_activation(yp, 1, y.numel(), y.numel(), act);
                  });
                }});
}

QUIVER_REGISTER_EMITTERS(edgeconv) {
  emitters.add("ai.quiver", "EdgeConv", emit_edge_conv);
}
}  // namespace quiver::onnx
