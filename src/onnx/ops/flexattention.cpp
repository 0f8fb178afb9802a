// FlexAttention (ai.onnx.preview): softmax(score_mod/mask_mod(Q K^T * scale)) then prob_mod, times V.
// Q [B, Hq, L, E], K [B, Hkv, S, E], V [B, Hkv, S, Ev] (query head h uses kv head h / (Hq / Hkv));
// scale defaults to 1/sqrt(E). score_mod, mask_mod and prob_mod are optional graphs with one input
// (the [B, Hq, L, S] scores or probabilities, in the input type) and one output of the same shape;
// they are compiled once at load and run on the whole score tensor.
#include "onnx/ops/mathops.hpp"
#include "onnx/plan.hpp"

namespace quiver::onnx {
namespace {

class FlexKernel final : public Kernel {
 public:
  FlexKernel(DType t, bool has_scale, double scale, std::vector<std::pair<int, Subgraph>> mods)
      : t_(t), has_scale_(has_scale), scale_(scale), mods_(std::move(mods)) {}

  void run(ExecContext& ec) const override {
    const Tensor& q = ec.input(0);
    const Tensor& k = ec.input(1);
    const Tensor& v = ec.input(2);
    if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4) ec.fail("Q, K and V must be 4-D");
    const int64_t B = q.dim(0), Hq = q.dim(1), L = q.dim(2), E = q.dim(3);
    const int64_t Hkv = k.dim(1), S = k.dim(2), Ev = v.dim(3);
    if (k.dim(0) != B || v.dim(0) != B || k.dim(3) != E || v.dim(1) != Hkv || v.dim(2) != S || Hkv <= 0 || Hq % Hkv != 0)
      ec.fail("Q, K, V shapes are inconsistent: " + dims_to_string(q.dims()) + ", " + dims_to_string(k.dims()) + ", " + dims_to_string(v.dims()));
    const int64_t group = Hq / Hkv;
    auto load = [](const Tensor& x) {
      std::vector<double> r(static_cast<size_t>(x.numel()));
      if (!r.empty()) convert_elements(x.dtype(), x.raw(), DType::F64, r.data(), x.numel());
      return r;
    };
    const auto qv = load(q), kv = load(k), vv = load(v);
    const double scale = has_scale_ ? scale_ : 1.0 / std::sqrt(static_cast<double>(E));
    const int64_t rows = B * Hq * L;
    std::vector<double> sc(static_cast<size_t>(rows * S));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < L; ++i)
          for (int64_t j = 0; j < S; ++j) {
            const double* qp = qv.data() + ((b * Hq + h) * L + i) * E;
            const double* kp = kv.data() + ((b * Hkv + h / group) * S + j) * E;
            double s = 0;
            for (int64_t e = 0; e < E; ++e) s += qp[e] * kp[e];
            sc[static_cast<size_t>(((b * Hq + h) * L + i) * S + j)] = s * scale;
          }
    const std::vector<int64_t> sdims{B, Hq, L, S};
    size_t state_index = 0;
    auto apply = [&](int stage) {
      for (const auto& [st, g] : mods_) {
        const size_t my_state = state_index;
        if (st != stage) continue;
        ++state_index;
        Tensor in = Tensor::empty(t_, sdims);
        convert_elements(DType::F64, sc.data(), t_, in.raw(), rows * S);
        std::vector<const Tensor*> ins{&in};
        for (size_t o : g.outer_inputs) ins.push_back(ec.input_ptr(o));
        PlanState& ps = ec.subgraph_state(my_state);
        g.plan->run(std::span<const Tensor* const>(ins.data(), ins.size()), ps);
        const Tensor& r = g.plan->result(0, ps);
        if (r.numel() != rows * S) ec.fail("a score/prob modification graph changed the shape to " + dims_to_string(r.dims()));
        convert_elements(r.dtype(), r.raw(), DType::F64, sc.data(), rows * S);
      }
    };
    // Stages in order: score_mod (0), mask_mod (1), softmax, prob_mod (2). The subgraph states are
    // numbered in compile order, which is the same order.
    apply(0);
    apply(1);
    for (int64_t r = 0; r < rows; ++r) {
      double* p = sc.data() + r * S;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < S; ++j) mx = std::max(mx, p[j]);
      double sum = 0;
      for (int64_t j = 0; j < S; ++j) { p[j] = std::exp(p[j] - mx); sum += p[j]; }
      for (int64_t j = 0; j < S; ++j) p[j] /= sum;
    }
    apply(2);
    std::vector<double> y(static_cast<size_t>(rows * Ev));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < L; ++i) {
          const double* p = sc.data() + ((b * Hq + h) * L + i) * S;
          double* o = y.data() + ((b * Hq + h) * L + i) * Ev;
          for (int64_t e = 0; e < Ev; ++e) {
            double a = 0;
            for (int64_t j = 0; j < S; ++j) a += p[j] * vv[static_cast<size_t>(((b * Hkv + h / group) * S + j) * Ev + e)];
            o[e] = a;
          }
        }
    Tensor& out = ec.output(0, t_, {B, Hq, L, Ev});
    if (!y.empty()) convert_elements(DType::F64, y.data(), t_, out.raw(), static_cast<int64_t>(y.size()));
  }

 private:
  DType t_;
  bool has_scale_;
  double scale_;
  std::vector<std::pair<int, Subgraph>> mods_;  // (stage, graph) in compile order
};

}  // namespace

QUIVER_REGISTER_OPS(flexattention) {
  registry.add({"ai.onnx.preview", "FlexAttention", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 3);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  ctx.set_output(0, t);
                  std::vector<std::pair<int, Subgraph>> mods;
                  const char* names[3] = {"score_mod", "mask_mod", "prob_mod"};
                  for (int s = 0; s < 3; ++s) {
                    if (!ctx.attrs().has(names[s])) continue;
                    ValueInfo in;
                    in.dtype = t;
                    mods.emplace_back(s, ctx.compile_subgraph(names[s], {in}));
                  }
                  return std::make_unique<FlexKernel>(t, ctx.attrs().has("scale"), ctx.attrs().get_float("scale", 1.f), std::move(mods));
                }});
}
}  // namespace quiver::onnx
