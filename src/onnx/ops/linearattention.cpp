// LinearAttention (opset 27): recurrent linear attention over 3-D [B, T, heads * D] query/key/value
// with a [B, kv_heads, d_k, d_v] state. update_rule: "linear" (S += k v^T), "gated" (S *= exp(decay)
// first), "delta" (v <- beta (v - S^T k')), "gated_delta" (both, default); k' = erase_gate * k when
// erase_gate is given. Query heads read the state of kv head h / (q_heads / kv_heads), scaled by
// `scale` (0 / absent: 1/sqrt(d_k)). Outputs: [B, T, q_heads * d_v] and present_state.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(linearattention) {
  registry.add({"", "LinearAttention", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 7);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  const auto& A = ctx.attrs();
                  const int64_t qH = A.req_int("q_num_heads"), kvH = A.req_int("kv_num_heads");
                  if (qH <= 0 || kvH <= 0 || qH % kvH != 0) ctx.fail("q_num_heads must be a positive multiple of kv_num_heads");
                  const double scale_attr = A.get_float("scale", 0.f);
                  const std::string rule = A.get_string("update_rule", "gated_delta");
                  if (rule != "linear" && rule != "gated" && rule != "delta" && rule != "gated_delta")
                    ctx.fail("update_rule must be linear, gated, delta or gated_delta, got '" + rule + "'");
                  const bool gating = rule == "gated" || rule == "gated_delta";
                  const bool delta = rule == "delta" || rule == "gated_delta";
                  if (gating != ctx.has_input(4)) ctx.fail("update_rule '" + rule + (gating ? "' requires" : "' forbids") + " the decay input");
                  if (delta != ctx.has_input(5)) ctx.fail("update_rule '" + rule + (delta ? "' requires" : "' forbids") + " the beta input");
                  if (ctx.has_input(6) && !delta) ctx.fail("update_rule '" + rule + "' forbids the erase_gate input");
                  const DType st = ctx.has_input(3) ? ctx.input_dtype(3) : t;
                  ctx.set_output(0, t);
                  if (ctx.num_outputs() > 1) ctx.set_output(1, st);
                  return make_kernel([=](ExecContext& ec) {
                    const Tensor& q = ec.input(0);
                    const Tensor& k = ec.input(1);
                    const Tensor& v = ec.input(2);
                    for (const Tensor* x : {&q, &k, &v})
                      if (x->rank() != 3) ec.fail("query, key and value must be [B, T, heads * D]");
                    const int64_t B = q.dim(0), T = q.dim(1);
                    if (q.dim(2) % qH || k.dim(2) % kvH || v.dim(2) % kvH) ec.fail("hidden sizes are not divisible by the head counts");
                    const int64_t dk = q.dim(2) / qH, dv = v.dim(2) / kvH, group = qH / kvH;
                    if (k.dim(2) / kvH != dk || k.dim(0) != B || v.dim(0) != B || k.dim(1) != T || v.dim(1) != T)
                      ec.fail("query, key and value shapes are inconsistent");
                    auto load = [](const Tensor& x) {
                      std::vector<double> r(static_cast<size_t>(x.numel()));
                      if (!r.empty()) convert_elements(x.dtype(), x.raw(), DType::F64, r.data(), x.numel());
                      return r;
                    };
                    const auto qv = load(q), kv = load(k), vv = load(v);
                    std::vector<double> S(static_cast<size_t>(B * kvH * dk * dv), 0.0);
                    if (ec.has_input(3)) {
                      const Tensor& p = ec.input(3);
                      if (p.rank() != 4 || p.dim(0) != B || p.dim(1) != kvH || p.dim(2) != dk || p.dim(3) != dv)
                        ec.fail("past_state must be [B, kv_heads, d_k, d_v], got " + dims_to_string(p.dims()), "past_state");
                      S = load(p);
                    }
                    std::vector<double> dec, bet, er;
                    int64_t dec_last = 0, bet_last = 0;
                    if (gating) {
                      const Tensor& d = ec.input(4);
                      dec_last = d.rank() == 3 ? d.dim(2) : -1;
                      if (dec_last != kvH && dec_last != kvH * dk) ec.fail("decay must be [B, T, kv_heads] or [B, T, kv_heads * d_k]", "decay");
                      dec = load(d);
                    }
                    if (delta) {
                      const Tensor& b = ec.input(5);
                      bet_last = b.rank() == 3 ? b.dim(2) : -1;
                      if (bet_last != kvH && bet_last != 1) ec.fail("beta must be [B, T, kv_heads] or [B, T, 1]", "beta");
                      bet = load(b);
                    }
                    const bool has_erase = ec.has_input(6);
                    if (has_erase) {
                      const Tensor& e = ec.input(6);
                      if (e.rank() != 3 || e.dim(2) != kvH * dk) ec.fail("erase_gate must be [B, T, kv_heads * d_k]", "erase_gate");
                      er = load(e);
                    }
                    const double scale = scale_attr == 0.0 ? 1.0 / std::sqrt(static_cast<double>(dk)) : scale_attr;
                    std::vector<double> out(static_cast<size_t>(B * T * qH * dv), 0.0), vt(static_cast<size_t>(dv)), ke(static_cast<size_t>(dk));
                    for (int64_t b = 0; b < B; ++b)
                      for (int64_t i = 0; i < T; ++i) {
                        for (int64_t h = 0; h < kvH; ++h) {
                          double* s = S.data() + (b * kvH + h) * dk * dv;
                          const double* kt = kv.data() + (b * T + i) * kvH * dk + h * dk;
                          const double* vsrc = vv.data() + (b * T + i) * kvH * dv + h * dv;
                          if (gating) {
                            for (int64_t d = 0; d < dk; ++d) {
                              const double g = dec_last == kvH ? dec[static_cast<size_t>((b * T + i) * kvH + h)]
                                                               : dec[static_cast<size_t>((b * T + i) * kvH * dk + h * dk + d)];
                              const double f = std::exp(g);
                              for (int64_t m = 0; m < dv; ++m) s[d * dv + m] *= f;
                            }
                          }
                          for (int64_t m = 0; m < dv; ++m) vt[static_cast<size_t>(m)] = vsrc[m];
                          if (delta) {
                            for (int64_t d = 0; d < dk; ++d)
                              ke[static_cast<size_t>(d)] = has_erase ? er[static_cast<size_t>((b * T + i) * kvH * dk + h * dk + d)] * kt[d] : kt[d];
                            const double be = bet[static_cast<size_t>((b * T + i) * bet_last + (bet_last == 1 ? 0 : h))];
                            for (int64_t m = 0; m < dv; ++m) {
                              double r = 0;
                              for (int64_t d = 0; d < dk; ++d) r += s[d * dv + m] * ke[static_cast<size_t>(d)];
                              vt[static_cast<size_t>(m)] = be * (vt[static_cast<size_t>(m)] - r);
                            }
                          }
                          for (int64_t d = 0; d < dk; ++d)
                            for (int64_t m = 0; m < dv; ++m) s[d * dv + m] += kt[d] * vt[static_cast<size_t>(m)];
                        }
                        for (int64_t h = 0; h < qH; ++h) {
                          const double* s = S.data() + (b * kvH + h / group) * dk * dv;
                          const double* qt = qv.data() + (b * T + i) * qH * dk + h * dk;
                          double* o = out.data() + (b * T + i) * qH * dv + h * dv;
                          for (int64_t m = 0; m < dv; ++m) {
                            double a = 0;
                            for (int64_t d = 0; d < dk; ++d) a += qt[d] * s[d * dv + m];
                            o[m] = scale * a;
                          }
                        }
                      }
                    Tensor& y = ec.output(0, t, {B, T, qH * dv});
                    if (!out.empty()) convert_elements(DType::F64, out.data(), t, y.raw(), static_cast<int64_t>(out.size()));
                    if (ec.num_outputs() > 1 && ec.wants_output(1)) {
                      Tensor& ps = ec.output(1, st, {B, kvH, dk, dv});
                      if (!S.empty()) convert_elements(DType::F64, S.data(), st, ps.raw(), static_cast<int64_t>(S.size()));
                    }
                  });
                }});
}
}  // namespace quiver::onnx
