// Device ops, network layers: Conv (pointwise, as GEMM), Gemm, MatMul (batched, broadcast), inference
// BatchNormalization, Softmax / LogSoftmax, TopK, the Reduce family and global pooling. Fused
// activations (_quiver_act, from the CPU engine's fusion pass) run in the bias epilogue.
#include <algorithm>
#include <cmath>

#include "gpu/executor.hpp"
#include "onnx/ops/rnn_common.hpp"

namespace quiver::gpu {
namespace {

struct Act {
  UnaryOp op = UnaryOp::Identity;
  float a = 0.f, b = 0.f;
};

Act fused_act(const OpCtx& c) {
  Act act;
  if (!c.attrs.has("_quiver_act")) return act;
  const std::string s = c.attrs.get_string("_quiver_act", "");
  act.a = c.attrs.get_float("_quiver_alpha", 0.f);
  act.b = c.attrs.get_float("_quiver_beta", 0.f);
  if (s == "Relu") act.op = UnaryOp::Relu;
  else if (s == "LeakyRelu") act.op = UnaryOp::LeakyRelu;
  else if (s == "Sigmoid") act.op = UnaryOp::Sigmoid;
  else if (s == "Tanh") act.op = UnaryOp::Tanh;
  else if (s == "Clip") act.op = UnaryOp::Clip;
  else c.cpu("fused activation");
  return act;
}

void require_f32(const OpCtx& c, size_t first, size_t last) {
  for (size_t i = first; i <= last && i < c.num_inputs(); ++i)
    if (c.has(i) && c.in(i).dtype != DType::F32) c.cpu("float only");
}

// Convolutions with one group: pointwise ones (every kernel dim 1, stride 1, no padding) are one
// strided-batched GEMM over the input as it is, Y[n] = W X[n]; the others (1-3 spatial dims, any
// stride, padding, dilation) unfold the input first (im2col into scratch), Y[n] = W col[n]. Bias
// and fused activation run in one pass after.
void conv_op(OpCtx& c) {
  require_f32(c, 0, 2);
  const Val& x = c.in(0);
  const Val& w = c.in(1);
  const size_t nd = x.dims.size() >= 2 ? x.dims.size() - 2 : 0;
  if (nd < 1 || nd > 3 || w.dims.size() != x.dims.size()) c.cpu("conv rank");
  if (c.attrs.get_int("group", 1) != 1) c.cpu("grouped conv");
  const int64_t n = x.dims[0], cin = x.dims[1], cout = w.dims[0];
  if (w.dims[1] != cin) c.fail("weight has " + std::to_string(w.dims[1]) + " input channels, input has " + std::to_string(cin));
  if (c.has(2) && c.in(2).numel() != cout) c.fail("bias has " + std::to_string(c.in(2).numel()) + " values for " + std::to_string(cout) + " channels");
  auto per_dim = [&](const char* name, int64_t def) {
    auto v = c.attrs.get_ints(name);
    if (v.empty()) v.assign(nd, def);
    if (v.size() != nd) c.fail(std::string(name) + " has " + std::to_string(v.size()) + " entries for " + std::to_string(nd) + " spatial dims");
    return v;
  };
  const auto strides = per_dim("strides", 1), dil = per_dim("dilations", 1);
  std::vector<int64_t> pads = c.attrs.get_ints("pads");
  if (pads.empty()) pads.assign(2 * nd, 0);
  if (pads.size() != 2 * nd) c.fail("pads has " + std::to_string(pads.size()) + " entries for " + std::to_string(nd) + " spatial dims");
  const std::string auto_pad = c.attrs.get_string("auto_pad", "NOTSET");
  ConvGeom g;
  g.nd = static_cast<int>(nd);
  g.N = n;
  g.C = cin;
  std::vector<int64_t> out = {n, cout};
  bool pointwise = true;
  for (size_t d = 0; d < nd; ++d) {
    const int64_t in = x.dims[2 + d], k = w.dims[2 + d], st = strides[d], dl = dil[d];
    if (st < 1 || dl < 1) c.fail("strides and dilations must be positive");
    const int64_t span = (k - 1) * dl + 1;
    int64_t pb = pads[d], pe = pads[nd + d], o;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      o = (in + st - 1) / st;
      const int64_t total = std::max<int64_t>(0, (o - 1) * st + span - in);
      pb = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pe = total - pb;
    } else if (auto_pad == "VALID") {
      pb = pe = 0;
      o = (in - span) / st + 1;
    } else if (auto_pad == "NOTSET") {
      o = (in + pb + pe - span) / st + 1;
    } else {
      c.fail("unknown auto_pad '" + auto_pad + "'");
    }
    if (o < 1) c.fail("the kernel does not fit the input along spatial dim " + std::to_string(d));
    const size_t slot = 3 - nd + d;  // right-aligned: unused leading dims stay 1
    g.in[slot] = in;
    g.k[slot] = k;
    g.out[slot] = o;
    g.stride[slot] = st;
    g.pad[slot] = pb;
    g.dil[slot] = dl;
    out.push_back(o);
    pointwise = pointwise && k == 1 && st == 1 && pb == 0 && pe == 0;
  }
  const int64_t kprod = g.k[0] * g.k[1] * g.k[2], oprod = g.out[0] * g.out[1] * g.out[2];
  const Act act = fused_act(c);
  const void* xp = c.dev(0);
  const void* wp = c.dev(1);
  const void* bp = c.has(2) ? c.dev(2) : nullptr;
  const int64_t K = cin * kprod;
  const void* cols = xp;
  if (!pointwise) {
    void* scratch = c.scratch(static_cast<size_t>(n * K * oprod) * sizeof(float));
    c.s.im2col(xp, scratch, g);
    cols = scratch;
  }
  void* y = c.out(0, DType::F32, out);
  c.s.gemm(false, false, cout, oprod, K, 1.f, wp, K, 0, cols, oprod, K * oprod, 0.f, y, oprod, cout * oprod, n);
  if (bp || act.op != UnaryOp::Identity) c.s.channel_op(y, y, nullptr, bp, n, cout, oprod, act.op, act.a, act.b);
}

void gemm_op(OpCtx& c) {
  require_f32(c, 0, 2);
  if (c.attrs.has("_quiver_a_btrans")) c.cpu("transposed-A fusion");
  const Val& a = c.in(0);
  const Val& b = c.in(1);
  if (a.dims.size() != 2 || b.dims.size() != 2) c.fail("Gemm inputs must be 2-D");
  const bool ta = c.attrs.get_int("transA", 0) != 0, tb = c.attrs.get_int("transB", 0) != 0;
  const float alpha = c.attrs.get_float("alpha", 1.f);
  float beta = c.attrs.get_float("beta", 1.f);
  const int64_t M = ta ? a.dims[1] : a.dims[0], K = ta ? a.dims[0] : a.dims[1];
  const int64_t K2 = tb ? b.dims[1] : b.dims[0], N = tb ? b.dims[0] : b.dims[1];
  if (K != K2) c.fail("inner dimensions differ: " + dims_to_string(a.dims) + " x " + dims_to_string(b.dims));
  const std::vector<int64_t> out{M, N};
  const Act act = fused_act(c);
  const void* ap = c.dev(0);
  const void* bp = c.dev(1);
  const bool with_c = c.has(2) && beta != 0.f;
  Layout cl;
  if (with_c) {
    if (broadcast_dims(c, {out, c.in(2).dims}) != out) c.fail("C of shape " + dims_to_string(c.in(2).dims) + " does not broadcast to " + dims_to_string(out), "C");
    cl = broadcast_layout(c, out, {out, c.in(2).dims});
  }
  const void* cp = with_c ? c.dev(2) : nullptr;
  void* y = c.out(0, DType::F32, out);
  if (with_c) c.s.copy_strided(y, cp, sizeof(float), cl, M * N);
  else beta = 0.f;
  c.s.gemm(ta, tb, M, N, K, alpha, ap, a.dims[1], 0, bp, b.dims[1], 0, beta, y, N, 0, 1);
  if (act.op != UnaryOp::Identity) c.s.unary(act.op, y, y, M * N, act.a, act.b);
}

void matmul_op(OpCtx& c) {
  require_f32(c, 0, 2);
  const Val& a = c.in(0);
  const Val& b = c.in(1);
  if (a.dims.empty() || b.dims.empty()) c.fail("MatMul inputs must have rank >= 1");
  std::vector<int64_t> ad = a.dims, bd = b.dims;
  const bool a1 = ad.size() == 1, b1 = bd.size() == 1;
  if (a1) ad.insert(ad.begin(), 1);
  if (b1) bd.push_back(1);
  const int64_t M = ad[ad.size() - 2], K = ad.back(), K2 = bd[bd.size() - 2], N = bd.back();
  if (K != K2) c.fail("inner dimensions differ: " + dims_to_string(a.dims) + " x " + dims_to_string(b.dims));
  const std::vector<int64_t> ab(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2);
  const auto batch = broadcast_dims(c, {ab, bb});
  const int64_t nb = numel(batch);
  std::vector<int64_t> out = batch;
  if (!a1) out.push_back(M);
  if (!b1) out.push_back(N);
  if (c.has(2) && c.in(2).numel() != N) c.fail("bias has " + std::to_string(c.in(2).numel()) + " values for " + std::to_string(N) + " columns");
  const Act act = fused_act(c);
  const void* ap = c.dev(0);
  const void* bp = c.dev(1);
  const void* biasp = c.has(2) ? c.dev(2) : nullptr;
  void* y = c.out(0, DType::F32, out);
  auto pad = [&](const std::vector<int64_t>& d) {
    std::vector<int64_t> p(batch.size() - d.size(), 1);
    p.insert(p.end(), d.begin(), d.end());
    return p;
  };
  const bool a_full = pad(ab) == batch, b_full = pad(bb) == batch;
  const bool a_one = numel(ab) == 1, b_one = numel(bb) == 1;
  if (nb == 0 || M == 0 || N == 0) {
    // nothing to multiply
  } else if (b_one && a_full) {
    // Shared right operand (weights): all batches are one tall GEMM.
    c.s.gemm(false, false, nb * M, N, K, 1.f, ap, K, 0, bp, N, 0, 0.f, y, N, 0, 1);
  } else if ((a_full || a_one) && (b_full || b_one)) {
    c.s.gemm(false, false, M, N, K, 1.f, ap, K, a_one ? 0 : M * K, bp, N, b_one ? 0 : K * N, 0.f, y, N, M * N, nb);
  } else {
    // Partial broadcasting ([B,1,M,K] x [1,H,K,N]): one GEMM per output batch.
    const Layout l = broadcast_layout(c, batch, {pad(ab), pad(bb)});
    for (int64_t i = 0; i < nb; ++i) {
      int64_t rem = i, oa = 0, ob = 0;
      for (int d = l.rank - 1; d >= 0; --d) {
        const int64_t r = rem % l.dims[d];
        rem /= l.dims[d];
        oa += r * l.stride[0][d];
        ob += r * l.stride[1][d];
      }
      c.s.gemm(false, false, M, N, K, 1.f, static_cast<const float*>(ap) + oa * M * K, K, 0,
               static_cast<const float*>(bp) + ob * K * N, N, 0, 0.f, static_cast<float*>(y) + i * M * N, N, 0, 1);
    }
  }
  if (biasp || act.op != UnaryOp::Identity) c.s.channel_op(y, y, nullptr, biasp, nb * M, N, 1, act.op, act.a, act.b);
}

void batchnorm_op(OpCtx& c) {
  require_f32(c, 0, 4);
  if (c.attrs.get_int("training_mode", 0) != 0 || c.wants(1) || c.wants(2)) c.cpu("training mode");
  const Val& x = c.in(0);
  if (x.dims.size() < 2) c.fail("input must have a channel dim");
  const int64_t C = x.dims[1];
  const float eps = c.attrs.get_float("epsilon", 1e-5f);
  const Tensor& scale = c.host(1);
  const Tensor& bias = c.host(2);
  const Tensor& mean = c.host(3);
  const Tensor& var = c.host(4);
  for (const Tensor* t : {&scale, &bias, &mean, &var})
    if (t->numel() != C) c.fail("per-channel input has " + std::to_string(t->numel()) + " values for " + std::to_string(C) + " channels");
  std::vector<float> ab(static_cast<size_t>(2 * C));
  for (int64_t k = 0; k < C; ++k) {
    const float a = scale.data<float>()[k] / std::sqrt(var.data<float>()[k] + eps);
    ab[k] = a;
    ab[C + k] = bias.data<float>()[k] - mean.data<float>()[k] * a;
  }
  int64_t inner = 1;
  for (size_t k = 2; k < x.dims.size(); ++k) inner *= x.dims[k];
  const void* xp = c.dev(0);
  float* coef = static_cast<float*>(c.scratch(ab.size() * sizeof(float)));
  c.s.upload(coef, ab.data(), ab.size() * sizeof(float));
  void* y = c.out(0, DType::F32, x.dims);
  c.s.channel_op(xp, y, coef, coef + C, x.dims[0], C, inner, UnaryOp::Identity, 0.f, 0.f);
}

template <bool Log>
void softmax_op(OpCtx& c) {
  require_f32(c, 0, 0);
  const Val& x = c.in(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const bool legacy = c.opset() < 13;  // coerced to 2-D at axis
  const int64_t axis = norm_axis(c, c.attrs.get_int("axis", legacy ? 1 : -1), r);
  int64_t outer = 1, len = 1, inner = 1;
  for (int64_t k = 0; k < r; ++k) {
    if (k < axis) outer *= x.dims[k];
    else if (k == axis || legacy) len *= x.dims[k];
    else inner *= x.dims[k];
  }
  const void* xp = c.dev(0);
  void* y = c.out(0, DType::F32, x.dims);
  if (len > 0) c.s.softmax(xp, y, outer, len, inner, Log);
}

void topk_op(OpCtx& c) {
  require_f32(c, 0, 0);
  const Val& x = c.in(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const int64_t axis = norm_axis(c, c.attrs.get_int("axis", -1), r);
  int64_t k;
  if (c.opset() < 10) {
    k = c.attrs.req_int("k");
  } else {
    const auto kv = c.ints(1);
    if (kv.size() != 1) c.fail("K must hold one value", "K");
    k = kv[0];
  }
  const int64_t len = x.dims[axis];
  if (k < 0 || k > len) c.fail("k = " + std::to_string(k) + " is outside [0, " + std::to_string(len) + "]");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dims[d];
  for (int64_t d = axis + 1; d < r; ++d) inner *= x.dims[d];
  std::vector<int64_t> out = x.dims;
  out[axis] = k;
  const void* xp = c.dev(0);
  void* vals = c.out(0, DType::F32, out);
  void* idx = c.out(1, DType::I64, out);
  if (k > 0) c.s.topk(xp, vals, idx, outer, len, inner, k, c.attrs.get_int("largest", 1) != 0);
}

void reduce_over(OpCtx& c, ReduceOp op, std::vector<int64_t> axes, bool keepdims, bool noop_empty) {
  const Val& x = c.in(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const void* xp = c.dev(0);
  if (axes.empty() && noop_empty) {
    c.s.copy(c.out(0, DType::F32, x.dims), xp, x.nbytes());
    return;
  }
  std::vector<bool> red(r, axes.empty());
  for (auto a : axes) red[norm_axis(c, a, r)] = true;
  const auto xs = contiguous_strides(x.dims);
  std::vector<int64_t> out;
  Layout keep, rl;
  int64_t red_n = 1;
  for (int64_t k = 0; k < r; ++k) {
    if (red[k]) {
      if (keepdims) out.push_back(1);
      if (rl.rank == kMaxRank) c.cpu("rank");
      rl.dims[rl.rank] = x.dims[k];
      rl.stride[0][rl.rank++] = xs[k];
      red_n *= x.dims[k];
    } else {
      out.push_back(x.dims[k]);
      if (keep.rank == kMaxRank) c.cpu("rank");
      keep.dims[keep.rank] = x.dims[k];
      keep.stride[0][keep.rank++] = xs[k];
    }
  }
  void* y = c.out(0, DType::F32, out);
  if (numel(out) > 0) c.s.reduce(op, xp, y, keep, rl, numel(out), red_n);
}

template <ReduceOp R>
void reduce_op(OpCtx& c) {
  require_f32(c, 0, 0);
  std::vector<int64_t> axes;
  const bool axes_input = c.opset() >= 18 || (R == ReduceOp::Sum && c.opset() >= 13);
  if (axes_input) {
    if (c.has(1)) axes = c.ints(1);
  } else {
    axes = c.attrs.get_ints("axes");
  }
  reduce_over(c, R, axes, c.attrs.get_int("keepdims", 1) != 0,
              axes_input && c.attrs.get_int("noop_with_empty_axes", 0) != 0);
}

template <ReduceOp R>
void global_pool_op(OpCtx& c) {
  require_f32(c, 0, 0);
  const int64_t r = static_cast<int64_t>(c.in(0).dims.size());
  if (r < 3) c.fail("input must be [N, C, spatial...]");
  std::vector<int64_t> axes;
  for (int64_t k = 2; k < r; ++k) axes.push_back(k);
  reduce_over(c, R, axes, true, false);
}

// What the device LSTM and GRU share: layout 0, no clip, every sequence full length (other
// configurations run the CPU kernel), the shape checks, and the activations parsed as the CPU
// kernel parses them.
struct RnnSetup {
  int64_t S = 0, B = 0, I = 0, D = 0, H = 0;
  bool reverse_only = false;
  std::vector<onnx::RnnActivation> acts;  // per direction: the cell's functions in order
  bool reverse(int64_t d) const { return reverse_only || d == 1; }
};

void expect_dims(const OpCtx& c, size_t i, const std::vector<int64_t>& want, const char* what) {
  if (c.has(i) && c.in(i).dims != want)
    c.fail(std::string(what) + " has shape " + dims_to_string(c.in(i).dims) + ", expected " + dims_to_string(want));
}

RnnSetup rnn_setup(OpCtx& c, onnx::CellKind kind, int64_t gates) {
  for (size_t i = 0; i < c.num_inputs(); ++i)
    if (i != 4 && c.has(i) && c.in(i).dtype != DType::F32) c.cpu("float only");
  if (c.attrs.get_int("layout", 0) != 0 || c.attrs.has("clip")) c.cpu("RNN layout / clip");
  const Val& x = c.in(0);
  const Val& w = c.in(1);
  const Val& r = c.in(2);
  if (x.dims.size() != 3 || w.dims.size() != 3 || r.dims.size() != 3) c.fail("X, W and R must be 3-D");
  RnnSetup st;
  st.S = x.dims[0], st.B = x.dims[1], st.I = x.dims[2], st.D = w.dims[0], st.H = r.dims[2];
  const std::string dir = c.attrs.get_string("direction", "forward");
  if ((dir == "bidirectional") != (st.D == 2) || (dir != "forward" && dir != "reverse" && dir != "bidirectional"))
    c.fail("direction '" + dir + "' does not match W's " + std::to_string(st.D) + " directions");
  st.reverse_only = dir == "reverse";
  if (w.dims[1] != gates * st.H || w.dims[2] != st.I || r.dims[0] != st.D || r.dims[1] != gates * st.H)
    c.fail("W " + dims_to_string(w.dims) + " / R " + dims_to_string(r.dims) + " do not fit X " + dims_to_string(x.dims));
  if (c.has(4)) {  // sequence_lens: only all-full lengths run here
    const Tensor& sl = c.host(4);
    for (int64_t b = 0; b < sl.numel(); ++b)
      if ((sl.dtype() == DType::I32 ? sl.data<int32_t>()[b] : sl.data<int64_t>()[b]) != st.S) c.cpu("sequence_lens");
  }
  expect_dims(c, 3, {st.D, 2 * gates * st.H}, "B");
  expect_dims(c, 5, {st.D, st.B, st.H}, "initial_h");
  st.acts = onnx::parse_rnn_activations(c.attrs, kind, st.D);
  return st;
}

// The directions of a layer: all steps' input projections as one GEMM into `proj` [S*B, gates*H],
// then step(d, g, h_prev, h) in time order (reversed for a backward direction), each new hidden
// state written into Y [S, D, B, H] and the last one copied to Y_h [D, B, H].
template <class Step>
void rnn_directions(OpCtx& c, const RnnSetup& r, int64_t gates, const float* h0, const float* zero_h, float* proj,
                    float* y, float* yh, Step&& step) {
  const int64_t S = r.S, B = r.B, H = r.H, G = gates * H;
  const void* xp = c.dev(0);
  const float* wp = static_cast<const float*>(c.dev(1));
  for (int64_t d = 0; d < r.D; ++d) {
    c.s.gemm(false, true, S * B, G, r.I, 1.f, xp, r.I, 0, wp + d * G * r.I, r.I, 0, 0.f, proj, G, 0, 1);
    const float* h_prev = h0 ? h0 + d * B * H : zero_h;
    for (int64_t k = 0; k < S; ++k) {
      const int64_t t = r.reverse(d) ? S - 1 - k : k;
      float* h = y + (t * r.D + d) * B * H;
      step(d, proj + t * B * G, h_prev, h);
      h_prev = h;
    }
    c.s.copy(yh + d * B * H, h_prev, static_cast<size_t>(B * H) * sizeof(float));
  }
}

using onnx::RnnAct;

// LSTM with the default functions (Sigmoid, Tanh, Tanh) and no input_forget; peepholes and initial
// states allowed. Per step: the recurrent GEMM into the step's projections, then one gate kernel.
void lstm_op(OpCtx& c) {
  const RnnSetup r = rnn_setup(c, onnx::CellKind::LSTM, 4);
  if (c.attrs.get_int("input_forget", 0) != 0) c.cpu("LSTM input_forget");
  for (size_t i = 0; i < r.acts.size(); ++i)
    if (r.acts[i].kind != (i % 3 == 0 ? RnnAct::Sigmoid : RnnAct::Tanh)) c.cpu("LSTM activations");
  const int64_t S = r.S, B = r.B, D = r.D, H = r.H;
  expect_dims(c, 6, {D, B, H}, "initial_c");
  expect_dims(c, 7, {D, 3 * H}, "P");
  const float* rp = static_cast<const float*>(c.dev(2));
  const float* bp = c.has(3) ? static_cast<const float*>(c.dev(3)) : nullptr;
  const float* h0 = c.has(5) ? static_cast<const float*>(c.dev(5)) : nullptr;
  const float* c0 = c.has(6) ? static_cast<const float*>(c.dev(6)) : nullptr;
  const float* pp = c.has(7) ? static_cast<const float*>(c.dev(7)) : nullptr;
  // Scratch: the gate pre-activations of every step [S, B, 4H], a zero H0 [B, H].
  float* gates = static_cast<float*>(c.scratch(static_cast<size_t>(S * B * 4 * H + B * H) * sizeof(float)));
  float* zero_h = gates + S * B * 4 * H;
  float* y = static_cast<float*>(c.out(0, DType::F32, {S, D, B, H}));
  float* yh = static_cast<float*>(c.out(1, DType::F32, {D, B, H}));
  float* yc = static_cast<float*>(c.out(2, DType::F32, {D, B, H}));  // the cell state lives in Y_c
  if (!h0) c.s.fill(zero_h, sizeof(float), 0, B * H);
  if (c0) c.s.copy(yc, c0, static_cast<size_t>(D * B * H) * sizeof(float));
  else c.s.fill(yc, sizeof(float), 0, D * B * H);
  rnn_directions(c, r, 4, h0, zero_h, gates, y, yh, [&](int64_t d, float* g, const float* h_prev, float* h) {
    c.s.gemm(false, true, B, 4 * H, H, 1.f, h_prev, H, 0, rp + d * 4 * H * H, H, 0, 1.f, g, 4 * H, 0, 1);
    c.s.lstm_gates(g, bp ? bp + d * 8 * H : nullptr, pp ? pp + d * 3 * H : nullptr, yc + d * B * H, h, B, H);
  });
}

// GRU with f = Sigmoid or HardSigmoid (Keras) and g = Tanh, either linear_before_reset. Per step:
// the z/r recurrent GEMM and their activation, then the h gate's recurrent GEMM (on r * h_prev, or
// on h_prev when linear_before_reset) and one kernel.
void gru_op(OpCtx& c) {
  const RnnSetup r = rnn_setup(c, onnx::CellKind::GRU, 3);
  std::vector<UnaryOp> fs;
  for (int64_t d = 0; d < r.D; ++d) {
    const auto& f = r.acts[2 * d];
    if (f.kind != RnnAct::Sigmoid && f.kind != RnnAct::HardSigmoid) c.cpu("GRU f activation");
    if (r.acts[2 * d + 1].kind != RnnAct::Tanh) c.cpu("GRU g activation");
    fs.push_back(f.kind == RnnAct::Sigmoid ? UnaryOp::Sigmoid : UnaryOp::HardSigmoid);
  }
  const int64_t S = r.S, B = r.B, D = r.D, H = r.H;
  const bool lbr = c.attrs.get_int("linear_before_reset", 0) != 0;
  const float* rp = static_cast<const float*>(c.dev(2));
  const float* bp = c.has(3) ? static_cast<const float*>(c.dev(3)) : nullptr;
  const float* h0 = c.has(5) ? static_cast<const float*>(c.dev(5)) : nullptr;
  float* gates = static_cast<float*>(c.scratch(static_cast<size_t>(S * B * 3 * H + 2 * B * H) * sizeof(float)));
  float* zero_h = gates + S * B * 3 * H;
  float* tmp = zero_h + B * H;  // r * h_prev, or h_prev R_h^T
  float* y = static_cast<float*>(c.out(0, DType::F32, {S, D, B, H}));
  float* yh = static_cast<float*>(c.out(1, DType::F32, {D, B, H}));
  if (!h0) c.s.fill(zero_h, sizeof(float), 0, B * H);
  rnn_directions(c, r, 3, h0, zero_h, gates, y, yh, [&](int64_t d, float* g, const float* h_prev, float* h) {
    const float* rd = rp + d * 3 * H * H;
    const float* bd = bp ? bp + d * 6 * H : nullptr;
    const auto& f = r.acts[2 * d];
    c.s.gemm(false, true, B, 2 * H, H, 1.f, h_prev, H, 0, rd, H, 0, 1.f, g, 3 * H, 0, 1);
    c.s.gru_zr(g, bd, B, H, fs[d], f.alpha, f.beta);
    if (lbr) {
      c.s.gemm(false, true, B, H, H, 1.f, h_prev, H, 0, rd + 2 * H * H, H, 0, 0.f, tmp, H, 0, 1);
    } else {
      c.s.gru_rh(g, h_prev, tmp, B, H);
      c.s.gemm(false, true, B, H, H, 1.f, tmp, H, 0, rd + 2 * H * H, H, 0, 1.f, g + 2 * H, 3 * H, 0, 1);
    }
    c.s.gru_h(g, bd, lbr ? tmp : nullptr, h_prev, h, B, H);
  });
}

}  // namespace

void register_nn_ops() {
  register_device_op("Conv", conv_op);
  register_device_op("Gemm", gemm_op);
  register_device_op("MatMul", matmul_op);
  register_device_op("BatchNormalization", batchnorm_op);
  register_device_op("Softmax", softmax_op<false>);
  register_device_op("LogSoftmax", softmax_op<true>);
  register_device_op("TopK", topk_op);
  register_device_op("LSTM", lstm_op);
  register_device_op("GRU", gru_op);
  register_device_op("ReduceSum", reduce_op<ReduceOp::Sum>);
  register_device_op("ReduceMean", reduce_op<ReduceOp::Mean>);
  register_device_op("ReduceMax", reduce_op<ReduceOp::Max>);
  register_device_op("ReduceMin", reduce_op<ReduceOp::Min>);
  register_device_op("ReduceProd", reduce_op<ReduceOp::Prod>);
  register_device_op("ReduceSumSquare", reduce_op<ReduceOp::SumSquare>);
  register_device_op("ReduceL1", reduce_op<ReduceOp::L1>);
  register_device_op("ReduceL2", reduce_op<ReduceOp::L2>);
  register_device_op("GlobalAveragePool", global_pool_op<ReduceOp::Mean>);
  register_device_op("GlobalMaxPool", global_pool_op<ReduceOp::Max>);
}

}  // namespace quiver::gpu
