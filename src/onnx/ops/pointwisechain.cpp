// ai.quiver::PointwiseChain(x, params...) attributes layers (strings: Conv, Affine, Gelu, GeluTanh)
// and acts / alphas / betas (each Conv's fused activation, one entry per layer): made by the code
// emitter's fusion pass (onnx/fusion.cpp, fuse_pointwise_chain) from a run of position-wise nodes
// over x [N, C, spatial...] — 1x1 Convs (inputs W [O, C, 1...], b [O]), inference
// BatchNormalizations (folded into y = x * scale + shift: inputs scale [C], shift [C]) and GELUs —
// whose intermediate values have no other reader; never found in a model file. The CPU kernel
// computes it layer by layer as written; the emitted step runs it a tile of positions at a time
// (rt::pointwise_chain), so no intermediate [N, C, L] tensor is alive.
#include <cmath>

#include "onnx/blas.hpp"
#include "onnx/emit.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "quiver/core/shape.hpp"

namespace quiver::onnx {

namespace {

enum class Kind { Conv, Affine, Gelu, GeluTanh };

struct Layer {
  Kind kind = Kind::Conv;
  int64_t in = 0, out = 0;
  std::shared_ptr<const Tensor> p, q;  // Conv: W, b; Affine: scale, shift
  ActivationSpec act;
};

// The input's channels: those of the first Conv or Affine layer (GELUs keep them).
int64_t chain_channels(const BuildContext& ctx) {
  const auto kinds = ctx.attrs().get_strings("layers");
  for (size_t l = 0, at = 1; l < kinds.size(); ++l) {
    if (kinds[l] != "Conv" && kinds[l] != "Affine") continue;
    if (at >= ctx.num_inputs() || !ctx.input(at).constant) break;
    const Tensor& t = *ctx.input(at).constant;
    return kinds[l] == "Conv" ? (t.rank() >= 2 ? t.dim(1) : -1) : t.numel();
  }
  ctx.fail("a chain needs a Conv or an Affine layer");
}

// The layers from the node's attributes and constant inputs; every channel count checked.
std::vector<Layer> read_layers(const BuildContext& ctx) {
  const int64_t C = chain_channels(ctx);
  const auto kinds = ctx.attrs().get_strings("layers");
  if (kinds.empty()) ctx.fail("a chain needs layers");
  const std::vector<ActivationSpec> acts = layer_activations(ctx, kinds.size());
  std::vector<Layer> ls;
  size_t at = 1;
  int64_t ch = C;
  auto constant = [&](size_t i, const std::string& what) {
    if (i >= ctx.num_inputs() || !ctx.input(i).constant || ctx.input(i).constant->dtype() != DType::F32)
      ctx.fail("layer " + std::to_string(ls.size()) + ": " + what + " must be a float constant");
    return ctx.input(i).constant;
  };
  for (size_t l = 0; l < kinds.size(); ++l) {
    Layer y;
    y.in = ch;
    if (kinds[l] == "Conv") {
      y.kind = Kind::Conv;
      y.p = constant(at, "W");
      y.q = constant(at + 1, "b");
      at += 2;
      if (y.p->rank() < 3 || y.p->dim(1) != ch) ctx.fail("layer " + std::to_string(l) + ": W must be [O, " + std::to_string(ch) + ", 1...]");
      for (size_t d = 2; d < y.p->rank(); ++d)
        if (y.p->dim(d) != 1) ctx.fail("layer " + std::to_string(l) + ": W must be a 1x1 kernel");
      y.out = y.p->dim(0);
      if (y.q->numel() != y.out) ctx.fail("layer " + std::to_string(l) + ": b must have " + std::to_string(y.out) + " values");
      y.act = acts[l];
    } else if (kinds[l] == "Affine") {
      y.kind = Kind::Affine;
      y.p = constant(at, "scale");
      y.q = constant(at + 1, "shift");
      at += 2;
      if (y.p->numel() != ch || y.q->numel() != ch)
        ctx.fail("layer " + std::to_string(l) + ": scale and shift must have " + std::to_string(ch) + " values");
      y.out = ch;
    } else if (kinds[l] == "Gelu" || kinds[l] == "GeluTanh") {
      y.kind = kinds[l] == "Gelu" ? Kind::Gelu : Kind::GeluTanh;
      y.out = ch;
    } else {
      ctx.fail("unknown layer kind '" + kinds[l] + "'");
    }
    ch = y.out;
    ls.push_back(std::move(y));
  }
  if (at != ctx.num_inputs()) ctx.fail("inputs do not match the layers");
  return ls;
}

float gelu(float v, bool tanh_form) {
  if (tanh_form) return 0.5f * v * (1.f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
  return 0.5f * v * (1.f + std::erf(v * 0.70710678f));
}

// quiver compile (default numerics; the fusion is off in reproducible mode): rt::pointwise_chain.
void emit_pointwise_chain(Emit& e) {
  if (e.reproducible()) e.refuse("PointwiseChain has no reproducible emission");
  if (e.in(0).dtype != DType::F32) e.refuse("emitted for float only");
  const int r = e.rank_in(0);
  if (r < 3) e.refuse("input rank below 3");
  const std::vector<Layer> ls = read_layers(e.node());
  const int64_t C = ls.front().in;
  int64_t cmax = C;
  std::string code = "const rt::ChainLayer layers[] = {\n";
  size_t at = 1;
  for (const Layer& l : ls) {
    cmax = l.out > cmax ? l.out : cmax;
    if (l.kind == Kind::Conv) {
      // W^T [in][out] packed: B(c, o) = W[o * in + c].
      const std::string wp = e.add_packed_b(l.p->data<float>(), l.in, l.out, 1, l.in);
      e.dims_only(at);
      code += "  {rt::kChainConv, " + std::to_string(l.out) + ", " + wp + ", x" + std::to_string(at + 1) + ", nullptr, " +
              act_literal(l.act) + "},\n";
      at += 2;
    } else if (l.kind == Kind::Affine) {
      code += "  {rt::kChainAffine, " + std::to_string(l.out) + ", nullptr, x" + std::to_string(at) + ", x" +
              std::to_string(at + 1) + ", rt::Act{}},\n";
      at += 2;
    } else {
      code += std::string("  {") + (l.kind == Kind::Gelu ? "rt::kChainGelu" : "rt::kChainGeluTanh") + ", " +
              std::to_string(l.out) + ", nullptr, nullptr, nullptr, rt::Act{}},\n";
    }
  }
  const std::string Cs = std::to_string(C), OLs = std::to_string(ls.back().out), Ls = e.span_in(0, 2, r);
  e.shape("if (I0.d[1] != " + Cs + ") fail(\"input channels differ from the weights'\");\nO0 = I0;\nO0.d[1] = " + OLs + ";\n");
  e.scratch("4 * rt::chain_floats(" + Ls + ", " + std::to_string(cmax) + ")");
  e.compute(code + "};\nrt::ChainArgs a;\na.N = " + e.din(0, 0) + ";\na.C = " + Cs + ";\na.L = " + Ls + ";\na.nl = " +
            std::to_string(ls.size()) + ";\na.layers = layers;\na.x = x0;\na.y = y0;\na.work = static_cast<float*>(scratch);\n"
            "rt::pointwise_chain(a);\n");
  e.comment("position-wise chain of " + std::to_string(ls.size()) +
            " layers (1x1 Conv, BatchNormalization, GELU), a tile of positions at a time (no intermediate tensor)");
}

}  // namespace

QUIVER_REGISTER_OPS(pointwisechain) {
  registry.add({"ai.quiver", "PointwiseChain", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_dtype(0, {DType::F32});
                  const std::vector<Layer> ls = read_layers(ctx);
                  const int64_t C = ls.front().in;
                  std::optional<std::vector<int64_t>> out = ctx.input(0).shape;
                  if (out && (out->size() < 3 || ((*out)[1] >= 0 && (*out)[1] != C)))
                    ctx.fail("x must be [N, " + std::to_string(C) + ", spatial...], got " + dims_to_string(*out));
                  if (out) (*out)[1] = ls.back().out;
                  ctx.set_output(0, DType::F32, out);
                  return make_kernel([ls, C](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() < 3 || x.dim(1) != C) ec.fail("x must be [N, " + std::to_string(C) + ", spatial...], got " + dims_to_string(x.dims()));
                    const int64_t N = x.dim(0), L = x.numel() / (N * C > 0 ? N * C : 1);
                    std::vector<float> cur(x.data<float>(), x.data<float>() + x.numel());
                    for (const Layer& l : ls) {
                      std::vector<float> next(static_cast<size_t>(N * l.out * L));
                      for (int64_t n = 0; n < N; ++n)
                        for (int64_t o = 0; o < l.out; ++o)
                          for (int64_t q = 0; q < L; ++q) {
                            const size_t yi = static_cast<size_t>((n * l.out + o) * L + q);
                            const float v = cur[static_cast<size_t>((n * l.in + (l.kind == Kind::Conv ? 0 : o)) * L + q)];
                            if (l.kind == Kind::Conv) {
                              float s = l.q->data<float>()[o];
                              for (int64_t c = 0; c < l.in; ++c)
                                s += l.p->data<float>()[o * l.in + c] * cur[static_cast<size_t>((n * l.in + c) * L + q)];
                              next[yi] = s;
                            } else if (l.kind == Kind::Affine) {
                              next[yi] = v * l.p->data<float>()[o] + l.q->data<float>()[o];
                            } else {
                              next[yi] = gelu(v, l.kind == Kind::GeluTanh);
                            }
                          }
                      if (l.kind == Kind::Conv) apply_activation(next.data(), 1, static_cast<int64_t>(next.size()), static_cast<int64_t>(next.size()), l.act);
                      cur.swap(next);
                    }
                    std::vector<int64_t> od = x.dims();
                    od[1] = ls.back().out;
                    Tensor& y = ec.output(0, DType::F32, od);
                    std::copy(cur.begin(), cur.end(), y.data<float>());
                  });
                }});
}

QUIVER_REGISTER_EMITTERS(pointwisechain) {
  emitters.add("ai.quiver", "PointwiseChain", emit_pointwise_chain);
}

}  // namespace quiver::onnx
