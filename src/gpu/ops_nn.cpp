// Device ops, network layers: Conv (as GEMM, im2col first unless pointwise), Gemm, MatMul (batched,
// broadcast), inference BatchNormalization, Softmax / LogSoftmax, TopK, the Reduce family, global
// pooling, LSTM and GRU. Fused activations (_quiver_act, from the CPU engine's fusion pass) run in the
// bias epilogue. Builders run once per step at load: dtypes, static ranks and attributes are read
// there; the kernels compute only what depends on the call's dims.
#include <algorithm>
#include <cmath>

#include "gpu/executor.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/ops/rnn_common.hpp"

namespace quiver::gpu {
namespace {

struct Act {
  UnaryOp op = UnaryOp::Identity;
  float a = 0.f, b = 0.f;
};

// The fused activation the fusion pass attached (onnx/ops/activation_attr.hpp reads it for both).
std::optional<Act> fused_act(const DeviceBuild& b) {
  const onnx::ActivationSpec spec = onnx::fused_activation(b.node());
  Act act{UnaryOp::Identity, spec.alpha, spec.beta};
  switch (spec.kind) {
    case onnx::Activation::None:
      if (b.attrs().has("_quiver_act")) return std::nullopt;  // one the device kernels lack
      break;
    case onnx::Activation::Relu: act.op = UnaryOp::Relu; break;
    case onnx::Activation::LeakyRelu: act.op = UnaryOp::LeakyRelu; break;
    case onnx::Activation::Sigmoid: act.op = UnaryOp::Sigmoid; break;
    case onnx::Activation::Tanh: act.op = UnaryOp::Tanh; break;
    case onnx::Activation::Clip: act.op = UnaryOp::Clip; break;
  }
  return act;
}

bool all_f32(const DeviceBuild& b, size_t first, size_t last) {
  for (size_t i = first; i <= last && i < b.num_inputs(); ++i)
    if (b.has(i) && b.dtype(i) != DType::F32) return false;
  return true;
}

// Convolutions with one group and 1-3 spatial dims: pointwise ones (every kernel dim 1, stride 1, no
// padding) are one strided-batched GEMM over the input as it is, Y[n] = W X[n]; the others (any
// stride, padding, dilation) unfold the input first (im2col into scratch), Y[n] = W col[n]. Bias and
// fused activation run in one pass after.
struct ConvAttrs {
  size_t nd = 0;
  std::vector<int64_t> strides, dil, pads;
  std::string auto_pad;
  Act act;
};

void run_conv(OpCtx& c, const ConvAttrs& at) {
  const Val& x = c.in(0);
  const Val& w = c.in(1);
  const size_t nd = at.nd;
  if (x.dims.size() != nd + 2 || w.dims.size() != nd + 2)
    c.fail("input " + dims_to_string(x.dims) + " and weight " + dims_to_string(w.dims) + " do not have " +
           std::to_string(nd) + " spatial dims");
  const int64_t n = x.dims[0], cin = x.dims[1], cout = w.dims[0];
  if (w.dims[1] != cin) c.fail("weight has " + std::to_string(w.dims[1]) + " input channels, input has " + std::to_string(cin));
  if (c.has(2) && c.in(2).numel() != cout) c.fail("bias has " + std::to_string(c.in(2).numel()) + " values for " + std::to_string(cout) + " channels");
  ConvGeom g;
  g.nd = static_cast<int>(nd);
  g.N = n;
  g.C = cin;
  std::vector<int64_t> out = {n, cout};
  bool pointwise = true;
  for (size_t d = 0; d < nd; ++d) {
    const int64_t in = x.dims[2 + d], k = w.dims[2 + d], st = at.strides[d], dl = at.dil[d];
    const int64_t span = (k - 1) * dl + 1;
    int64_t pb = at.pads[d], pe = at.pads[nd + d], o;
    if (at.auto_pad == "SAME_UPPER" || at.auto_pad == "SAME_LOWER") {
      o = (in + st - 1) / st;
      const int64_t total = std::max<int64_t>(0, (o - 1) * st + span - in);
      pb = at.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pe = total - pb;
    } else if (at.auto_pad == "VALID") {
      pb = pe = 0;
      o = (in - span) / st + 1;
    } else {
      o = (in + pb + pe - span) / st + 1;
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
  if (bp || at.act.op != UnaryOp::Identity) c.s.channel_op(y, y, nullptr, bp, n, cout, oprod, at.act.op, at.act.a, at.act.b);
}

std::unique_ptr<const DeviceOp> build_conv(DeviceBuild& b) {
  if (!all_f32(b, 0, 2)) return b.decline("float only");
  if (!b.shape(0) || !b.shape(1) || b.shape(0)->size() != b.shape(1)->size() || b.shape(0)->size() < 3 ||
      b.shape(0)->size() > 5)
    return b.decline("conv rank");
  if (b.attrs().get_int("group", 1) != 1) return b.decline("grouped conv");
  ConvAttrs at;
  at.nd = b.shape(0)->size() - 2;
  auto per_dim = [&](const char* name, int64_t def) {
    auto v = b.attrs().get_ints(name);
    if (v.empty()) v.assign(at.nd, def);
    return v;
  };
  at.strides = per_dim("strides", 1);
  at.dil = per_dim("dilations", 1);
  at.pads = b.attrs().get_ints("pads");
  if (at.pads.empty()) at.pads.assign(2 * at.nd, 0);
  at.auto_pad = b.attrs().get_string("auto_pad", "NOTSET");
  if (at.strides.size() != at.nd || at.dil.size() != at.nd || at.pads.size() != 2 * at.nd)
    return b.decline("strides, dilations or pads do not fit the spatial dims");
  for (size_t d = 0; d < at.nd; ++d)
    if (at.strides[d] < 1 || at.dil[d] < 1) return b.decline("strides and dilations must be positive");
  if (at.auto_pad != "NOTSET" && at.auto_pad != "SAME_UPPER" && at.auto_pad != "SAME_LOWER" && at.auto_pad != "VALID")
    return b.decline("unknown auto_pad");
  const auto act = fused_act(b);
  if (!act) return b.decline("fused activation");
  at.act = *act;
  return device_op([at = std::move(at)](OpCtx& c) { run_conv(c, at); });
}

std::unique_ptr<const DeviceOp> build_gemm(DeviceBuild& b) {
  if (!all_f32(b, 0, 2)) return b.decline("float only");
  if (b.attrs().has("_quiver_a_btrans")) return b.decline("transposed-A fusion");
  const bool ta = b.attrs().get_int("transA", 0) != 0, tb = b.attrs().get_int("transB", 0) != 0;
  const float alpha = b.attrs().get_float("alpha", 1.f), beta = b.attrs().get_float("beta", 1.f);
  const auto act = fused_act(b);
  if (!act) return b.decline("fused activation");
  return device_op([ta, tb, alpha, beta, act = *act](OpCtx& c) {
    const Val& a = c.in(0);
    const Val& bv = c.in(1);
    if (a.dims.size() != 2 || bv.dims.size() != 2) c.fail("Gemm inputs must be 2-D");
    const int64_t M = ta ? a.dims[1] : a.dims[0], K = ta ? a.dims[0] : a.dims[1];
    const int64_t K2 = tb ? bv.dims[1] : bv.dims[0], N = tb ? bv.dims[0] : bv.dims[1];
    if (K != K2) c.fail("inner dimensions differ: " + dims_to_string(a.dims) + " x " + dims_to_string(bv.dims));
    const std::vector<int64_t> out{M, N};
    const void* ap = c.dev(0);
    const void* bp = c.dev(1);
    const bool with_c = c.has(2) && beta != 0.f;
    if (with_c && broadcast_dims(c, {out, c.in(2).dims}) != out)
      c.fail("C of shape " + dims_to_string(c.in(2).dims) + " does not broadcast to " + dims_to_string(out), "C");
    const void* cp = with_c ? c.dev(2) : nullptr;
    void* y = c.out(0, DType::F32, out);
    if (with_c)  // y = C broadcast, then the product accumulates onto it
      launch(broadcast_space(c, out, {out, c.in(2).dims}), [&](const Layout& l, int64_t n, int64_t) {
        c.s.copy_strided(y, cp, sizeof(float), l, n);
      });
    c.s.gemm(ta, tb, M, N, K, alpha, ap, a.dims[1], 0, bp, bv.dims[1], 0, with_c ? beta : 0.f, y, N, 0, 1);
    if (act.op != UnaryOp::Identity) c.s.unary(act.op, y, y, M * N, act.a, act.b);
  });
}

std::unique_ptr<const DeviceOp> build_matmul(DeviceBuild& b) {
  if (!all_f32(b, 0, 2)) return b.decline("float only");
  const auto act = fused_act(b);
  if (!act) return b.decline("fused activation");
  return device_op([act = *act](OpCtx& c) {
    const Val& a = c.in(0);
    const Val& bv = c.in(1);
    if (a.dims.empty() || bv.dims.empty()) c.fail("MatMul inputs must have rank >= 1");
    std::vector<int64_t> ad = a.dims, bd = bv.dims;
    const bool a1 = ad.size() == 1, b1 = bd.size() == 1;
    if (a1) ad.insert(ad.begin(), 1);
    if (b1) bd.push_back(1);
    const int64_t M = ad[ad.size() - 2], K = ad.back(), K2 = bd[bd.size() - 2], N = bd.back();
    if (K != K2) c.fail("inner dimensions differ: " + dims_to_string(a.dims) + " x " + dims_to_string(bv.dims));
    const std::vector<int64_t> ab(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2);
    const auto batch = broadcast_dims(c, {ab, bb});
    const int64_t nb = numel(batch);
    std::vector<int64_t> out = batch;
    if (!a1) out.push_back(M);
    if (!b1) out.push_back(N);
    if (c.has(2) && c.in(2).numel() != N)
      c.fail("bias has " + std::to_string(c.in(2).numel()) + " values for " + std::to_string(N) + " columns");
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
      const Space sp = broadcast_space(c, batch, {pad(ab), pad(bb)});
      for (int64_t i = 0; i < nb; ++i) {
        int64_t rem = i, oa = 0, ob = 0;
        for (size_t d = sp.dims.size(); d-- > 0;) {
          const int64_t r = rem % sp.dims[d];
          rem /= sp.dims[d];
          oa += r * sp.stride[0][d];
          ob += r * sp.stride[1][d];
        }
        c.s.gemm(false, false, M, N, K, 1.f, static_cast<const float*>(ap) + oa * M * K, K, 0,
                 static_cast<const float*>(bp) + ob * K * N, N, 0, 0.f, static_cast<float*>(y) + i * M * N, N, 0, 1);
      }
    }
    if (biasp || act.op != UnaryOp::Identity) c.s.channel_op(y, y, nullptr, biasp, nb * M, N, 1, act.op, act.a, act.b);
  });
}

// Inference BatchNormalization: y = x * a[c] + b[c], a = scale / sqrt(var + eps), b = bias - mean * a.
// The coefficients are computed at load when the four inputs are constants (the usual case), else per call.
std::unique_ptr<const DeviceOp> build_batchnorm(DeviceBuild& b) {
  if (!all_f32(b, 0, 4)) return b.decline("float only");
  if (b.attrs().get_int("training_mode", 0) != 0 || b.wants(1) || b.wants(2)) return b.decline("training mode");
  const float eps = b.attrs().get_float("epsilon", 1e-5f);
  auto coefficients = [eps](const Tensor& scale, const Tensor& bias, const Tensor& mean, const Tensor& var) {
    const int64_t C = scale.numel();
    std::vector<float> ab(static_cast<size_t>(2 * C));
    for (int64_t k = 0; k < C; ++k) {
      const float a = scale.data<float>()[k] / std::sqrt(var.data<float>()[k] + eps);
      ab[k] = a;
      ab[C + k] = bias.data<float>()[k] - mean.data<float>()[k] * a;
    }
    return ab;
  };
  std::vector<float> pre;  // a then b, when the inputs are constants
  bool constant = true;
  for (size_t i = 1; i <= 4; ++i) constant = constant && b.constant(i);
  if (constant) {
    const int64_t C = b.constant(1)->numel();
    for (size_t i = 2; i <= 4; ++i)
      if (b.constant(i)->numel() != C) return b.decline("per-channel inputs differ in size");
    pre = coefficients(*b.constant(1), *b.constant(2), *b.constant(3), *b.constant(4));
  } else {
    for (size_t i = 1; i <= 4; ++i) b.read_on_host(i);
  }
  return device_op([pre = std::move(pre), coefficients](OpCtx& c) {
    const Val& x = c.in(0);
    if (x.dims.size() < 2) c.fail("input must have a channel dim");
    const int64_t C = x.dims[1];
    std::vector<float> per_call;
    if (pre.empty()) {
      const Tensor& scale = c.host(1);
      const Tensor& bias = c.host(2);
      const Tensor& mean = c.host(3);
      const Tensor& var = c.host(4);
      for (const Tensor* t : {&scale, &bias, &mean, &var})
        if (t->numel() != C)
          c.fail("per-channel input has " + std::to_string(t->numel()) + " values for " + std::to_string(C) + " channels");
      per_call = coefficients(scale, bias, mean, var);
    } else if (static_cast<int64_t>(pre.size()) != 2 * C) {
      c.fail("per-channel input has " + std::to_string(pre.size() / 2) + " values for " + std::to_string(C) + " channels");
    }
    const std::vector<float>& ab = pre.empty() ? per_call : pre;
    int64_t inner = 1;
    for (size_t k = 2; k < x.dims.size(); ++k) inner *= x.dims[k];
    const void* xp = c.dev(0);
    float* coef = static_cast<float*>(c.scratch(ab.size() * sizeof(float)));
    c.s.upload(coef, ab.data(), ab.size() * sizeof(float));
    void* y = c.out(0, DType::F32, x.dims);
    c.s.channel_op(xp, y, coef, coef + C, x.dims[0], C, inner, UnaryOp::Identity, 0.f, 0.f);
  });
}

template <bool Log>
std::unique_ptr<const DeviceOp> build_softmax(DeviceBuild& b) {
  if (!all_f32(b, 0, 0)) return b.decline("float only");
  const bool legacy = b.opset() < 13;  // coerced to 2-D at axis
  const int64_t axis_attr = b.attrs().get_int("axis", legacy ? 1 : -1);
  return device_op([legacy, axis_attr](OpCtx& c) {
    const Val& x = c.in(0);
    const int64_t r = static_cast<int64_t>(x.dims.size());
    const int64_t axis = norm_axis(c, axis_attr, r);
    int64_t outer = 1, len = 1, inner = 1;
    for (int64_t k = 0; k < r; ++k) {
      if (k < axis) outer *= x.dims[k];
      else if (k == axis || legacy) len *= x.dims[k];
      else inner *= x.dims[k];
    }
    const void* xp = c.dev(0);
    void* y = c.out(0, DType::F32, x.dims);
    if (len > 0) c.s.softmax(xp, y, outer, len, inner, Log);
  });
}

std::unique_ptr<const DeviceOp> build_topk(DeviceBuild& b) {
  if (!all_f32(b, 0, 0)) return b.decline("float only");
  const int64_t axis_attr = b.attrs().get_int("axis", -1);
  const bool largest = b.attrs().get_int("largest", 1) != 0;
  std::optional<std::vector<int64_t>> k_pre;
  if (b.opset() < 10) k_pre = std::vector<int64_t>{b.attrs().get_int("k", 0)};
  else k_pre = b.ints_or_host(1);
  return device_op([axis_attr, largest, k_pre](OpCtx& c) {
    const Val& x = c.in(0);
    const int64_t r = static_cast<int64_t>(x.dims.size());
    const int64_t axis = norm_axis(c, axis_attr, r);
    const auto kv = k_pre ? *k_pre : c.ints(1);
    if (kv.size() != 1) c.fail("K must hold one value", "K");
    const int64_t k = kv[0];
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
    if (k > 0) c.s.topk(xp, vals, idx, outer, len, inner, k, largest);
  });
}

// Reduces x over `axes`. Adjacent kept dims and adjacent reduced dims merge (each run is contiguous),
// so any rank up to 2 * kMaxRank fits one reduction layout; more kept dims than kMaxRank are taken
// in pieces (launch).
void reduce_over(OpCtx& c, ReduceOp op, const std::vector<int64_t>& axes, bool keepdims, bool noop_empty) {
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
  Space keep;
  Layout rl;
  int64_t red_n = 1;
  bool last_red = false;
  for (int64_t k = 0; k < r; ++k) {
    const bool merge = k > 0 && red[k] == last_red;
    last_red = red[k];
    if (red[k]) {
      if (keepdims) out.push_back(1);
      red_n *= x.dims[k];
      if (merge) {
        rl.dims[rl.rank - 1] *= x.dims[k];
        rl.stride[0][rl.rank - 1] = xs[k];
        continue;
      }
      if (rl.rank == kMaxRank) c.fail("more than " + std::to_string(kMaxRank) + " separate runs of reduced axes");
      rl.dims[rl.rank] = x.dims[k];
      rl.stride[0][rl.rank++] = xs[k];
    } else {
      out.push_back(x.dims[k]);
      if (merge) {
        keep.dims.back() *= x.dims[k];
        keep.stride[0].back() = xs[k];
        continue;
      }
      keep.dims.push_back(x.dims[k]);
      keep.stride[0].push_back(xs[k]);
    }
  }
  float* y = static_cast<float*>(c.out(0, DType::F32, out));
  if (numel(out) > 0)
    launch(keep, [&](const Layout& kl, int64_t n, int64_t first) { c.s.reduce(op, xp, y + first, kl, rl, n, red_n); });
}

template <ReduceOp R>
std::unique_ptr<const DeviceOp> build_reduce(DeviceBuild& b) {
  if (!all_f32(b, 0, 0)) return b.decline("float only");
  const bool axes_input = b.opset() >= 18 || (R == ReduceOp::Sum && b.opset() >= 13);
  std::optional<std::vector<int64_t>> axes = std::vector<int64_t>{};  // nullopt: read per call
  if (!axes_input) axes = b.attrs().get_ints("axes");
  else if (b.has(1)) axes = b.ints_or_host(1);
  const bool keepdims = b.attrs().get_int("keepdims", 1) != 0;
  const bool noop_empty = axes_input && b.attrs().get_int("noop_with_empty_axes", 0) != 0;
  return device_op([axes, keepdims, noop_empty](OpCtx& c) {
    reduce_over(c, R, axes ? *axes : c.ints(1), keepdims, noop_empty);
  });
}

template <ReduceOp R>
std::unique_ptr<const DeviceOp> build_global_pool(DeviceBuild& b) {
  if (!all_f32(b, 0, 0)) return b.decline("float only");
  return device_op([](OpCtx& c) {
    const int64_t r = static_cast<int64_t>(c.in(0).dims.size());
    if (r < 3) c.fail("input must be [N, C, spatial...]");
    std::vector<int64_t> axes;
    for (int64_t k = 2; k < r; ++k) axes.push_back(k);
    reduce_over(c, R, axes, true, false);
  });
}

// What the device LSTM and GRU share: layout 0, no clip, every sequence full length (other
// configurations run the CPU kernel), the activations parsed as the CPU kernel parses them (at load),
// and per call the shapes.
struct RnnAttrs {
  std::string direction;
  int64_t D = 1;
  bool reverse_only = false;
  std::vector<onnx::RnnActivation> acts;  // per direction: the cell's functions in order
};

struct RnnSetup {
  int64_t S = 0, B = 0, I = 0, D = 0, H = 0;
  bool reverse_only = false;
  bool reverse(int64_t d) const { return reverse_only || d == 1; }
};

std::optional<RnnAttrs> rnn_attrs(DeviceBuild& b, onnx::CellKind kind) {
  for (size_t i = 0; i < b.num_inputs(); ++i)
    if (i != 4 && b.has(i) && b.dtype(i) != DType::F32) {
      b.decline("float only");
      return std::nullopt;
    }
  if (b.attrs().get_int("layout", 0) != 0 || b.attrs().has("clip")) {
    b.decline("RNN layout / clip");
    return std::nullopt;
  }
  if (b.has(4)) {  // sequence_lens: only all-full lengths run here, known at load
    const auto sl = b.const_ints(4);
    const auto& xs = b.shape(0);
    const bool full = sl && xs && xs->size() == 3 && (*xs)[0] >= 0 &&
                      std::all_of(sl->begin(), sl->end(), [&](int64_t v) { return v == (*xs)[0]; });
    if (!full) {
      b.decline("sequence_lens");
      return std::nullopt;
    }
  }
  RnnAttrs a;
  const std::string dir = b.attrs().get_string("direction", "forward");
  if (dir != "forward" && dir != "reverse" && dir != "bidirectional") {
    b.decline("direction '" + dir + "'");
    return std::nullopt;
  }
  a.direction = dir;
  a.D = dir == "bidirectional" ? 2 : 1;
  a.reverse_only = dir == "reverse";
  a.acts = onnx::parse_rnn_activations(b.attrs(), kind, a.D);
  return a;
}

void expect_dims(const OpCtx& c, size_t i, const std::vector<int64_t>& want, const char* what) {
  if (c.has(i) && c.in(i).dims != want)
    c.fail(std::string(what) + " has shape " + dims_to_string(c.in(i).dims) + ", expected " + dims_to_string(want));
}

RnnSetup rnn_setup(OpCtx& c, const RnnAttrs& a, int64_t gates) {
  const Val& x = c.in(0);
  const Val& w = c.in(1);
  const Val& r = c.in(2);
  if (x.dims.size() != 3 || w.dims.size() != 3 || r.dims.size() != 3) c.fail("X, W and R must be 3-D");
  RnnSetup st;
  st.S = x.dims[0], st.B = x.dims[1], st.I = x.dims[2], st.D = w.dims[0], st.H = r.dims[2];
  if (st.D != a.D) c.fail("direction '" + a.direction + "' does not match W's " + std::to_string(st.D) + " directions");
  st.reverse_only = a.reverse_only;
  if (w.dims[1] != gates * st.H || w.dims[2] != st.I || r.dims[0] != st.D || r.dims[1] != gates * st.H)
    c.fail("W " + dims_to_string(w.dims) + " / R " + dims_to_string(r.dims) + " do not fit X " + dims_to_string(x.dims));
  expect_dims(c, 3, {st.D, 2 * gates * st.H}, "B");
  expect_dims(c, 5, {st.D, st.B, st.H}, "initial_h");
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
std::unique_ptr<const DeviceOp> build_lstm(DeviceBuild& b) {
  auto ra = rnn_attrs(b, onnx::CellKind::LSTM);
  if (!ra) return nullptr;
  if (b.attrs().get_int("input_forget", 0) != 0) return b.decline("LSTM input_forget");
  for (size_t i = 0; i < ra->acts.size(); ++i)
    if (ra->acts[i].kind != (i % 3 == 0 ? RnnAct::Sigmoid : RnnAct::Tanh)) return b.decline("LSTM activations");
  return device_op([a = std::move(*ra)](OpCtx& c) {
    const RnnSetup r = rnn_setup(c, a, 4);
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
  });
}

// GRU with f = Sigmoid or HardSigmoid (Keras) and g = Tanh, either linear_before_reset. Per step:
// the z/r recurrent GEMM and their activation, then the h gate's recurrent GEMM (on r * h_prev, or
// on h_prev when linear_before_reset) and one kernel.
std::unique_ptr<const DeviceOp> build_gru(DeviceBuild& b) {
  auto ra = rnn_attrs(b, onnx::CellKind::GRU);
  if (!ra) return nullptr;
  std::vector<UnaryOp> fs;
  for (int64_t d = 0; d < ra->D; ++d) {
    const auto& f = ra->acts[2 * d];
    if (f.kind != RnnAct::Sigmoid && f.kind != RnnAct::HardSigmoid) return b.decline("GRU f activation");
    if (ra->acts[2 * d + 1].kind != RnnAct::Tanh) return b.decline("GRU g activation");
    fs.push_back(f.kind == RnnAct::Sigmoid ? UnaryOp::Sigmoid : UnaryOp::HardSigmoid);
  }
  const bool lbr = b.attrs().get_int("linear_before_reset", 0) != 0;
  return device_op([a = std::move(*ra), fs, lbr](OpCtx& c) {
    const RnnSetup r = rnn_setup(c, a, 3);
    const int64_t S = r.S, B = r.B, H = r.H;
    const float* rp = static_cast<const float*>(c.dev(2));
    const float* bp = c.has(3) ? static_cast<const float*>(c.dev(3)) : nullptr;
    const float* h0 = c.has(5) ? static_cast<const float*>(c.dev(5)) : nullptr;
    float* gates = static_cast<float*>(c.scratch(static_cast<size_t>(S * B * 3 * H + 2 * B * H) * sizeof(float)));
    float* zero_h = gates + S * B * 3 * H;
    float* tmp = zero_h + B * H;  // r * h_prev, or h_prev R_h^T
    float* y = static_cast<float*>(c.out(0, DType::F32, {S, r.D, B, H}));
    float* yh = static_cast<float*>(c.out(1, DType::F32, {r.D, B, H}));
    if (!h0) c.s.fill(zero_h, sizeof(float), 0, B * H);
    rnn_directions(c, r, 3, h0, zero_h, gates, y, yh, [&](int64_t d, float* g, const float* h_prev, float* h) {
      const float* rd = rp + d * 3 * H * H;
      const float* bd = bp ? bp + d * 6 * H : nullptr;
      const auto& f = a.acts[2 * d];
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
  });
}

}  // namespace

void add_nn_ops(DeviceOpTable& t) {
  t.add("", "Conv", build_conv);
  t.add("", "Gemm", build_gemm);
  t.add("", "MatMul", build_matmul);
  t.add("", "BatchNormalization", build_batchnorm);
  t.add("", "Softmax", build_softmax<false>);
  t.add("", "LogSoftmax", build_softmax<true>);
  t.add("", "TopK", build_topk);
  t.add("", "LSTM", build_lstm);
  t.add("", "GRU", build_gru);
  t.add("", "ReduceSum", build_reduce<ReduceOp::Sum>);
  t.add("", "ReduceMean", build_reduce<ReduceOp::Mean>);
  t.add("", "ReduceMax", build_reduce<ReduceOp::Max>);
  t.add("", "ReduceMin", build_reduce<ReduceOp::Min>);
  t.add("", "ReduceProd", build_reduce<ReduceOp::Prod>);
  t.add("", "ReduceSumSquare", build_reduce<ReduceOp::SumSquare>);
  t.add("", "ReduceL1", build_reduce<ReduceOp::L1>);
  t.add("", "ReduceL2", build_reduce<ReduceOp::L2>);
  t.add("", "GlobalAveragePool", build_global_pool<ReduceOp::Mean>);
  t.add("", "GlobalMaxPool", build_global_pool<ReduceOp::Max>);
}

}  // namespace quiver::gpu
