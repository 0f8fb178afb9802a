// CausalConvWithState(input [B, C, L], weight [C, 1, k], bias [C]?, past_state [B, C, k-1]?):
// depthwise causal 1-D convolution over past_state (zeros when absent) followed by the input, optional
// fused activation "silu"/"swish" (x * sigmoid(x)); output 1 (present_state) holds the last k-1
// positions of the padded input.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(causalconvwithstate) {
  registry.add({"", "CausalConvWithState", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 4);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  const std::string act = ctx.attrs().get_string("activation", "none");
                  if (act != "none" && act != "silu" && act != "swish") ctx.fail("activation must be none, silu or swish, got '" + act + "'");
                  const bool silu = act != "none";
                  for (size_t o = 0; o < ctx.num_outputs(); ++o) ctx.set_output(o, t);
                  return make_kernel([t, silu](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& w = ec.input(1);
                    if (x.rank() != 3) ec.fail("input must be [batch, channels, length], got " + dims_to_string(x.dims()), "input");
                    const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2);
                    if (w.rank() != 3 || w.dim(0) != C || w.dim(1) != 1) ec.fail("weight must be [channels, 1, k], got " + dims_to_string(w.dims()), "weight");
                    const int64_t k = w.dim(2), P = k - 1, T = L + P;
                    const Tensor* bias = ec.has_input(2) ? &ec.input(2) : nullptr;
                    const Tensor* past = ec.has_input(3) ? &ec.input(3) : nullptr;
                    if (bias && bias->numel() != C) ec.fail("bias must have C elements", "bias");
                    if (past && (past->rank() != 3 || past->dim(0) != B || past->dim(1) != C || past->dim(2) != P))
                      ec.fail("past_state must be [batch, channels, k - 1], got " + dims_to_string(past->dims()), "past_state");
                    std::vector<double> xv(static_cast<size_t>(x.numel())), wv(static_cast<size_t>(w.numel())), bv(static_cast<size_t>(C), 0.0),
                        pv(static_cast<size_t>(B * C * P), 0.0);
                    convert_elements(t, x.raw(), DType::F64, xv.data(), x.numel());
                    convert_elements(w.dtype(), w.raw(), DType::F64, wv.data(), w.numel());
                    if (bias) convert_elements(bias->dtype(), bias->raw(), DType::F64, bv.data(), C);
                    if (past && !pv.empty()) convert_elements(past->dtype(), past->raw(), DType::F64, pv.data(), B * C * P);
                    std::vector<double> padded(static_cast<size_t>(B * C * T)), out(static_cast<size_t>(B * C * L));
                    for (int64_t bc = 0; bc < B * C; ++bc) {
                      double* p = padded.data() + bc * T;
                      std::copy_n(pv.data() + bc * P, P, p);
                      std::copy_n(xv.data() + bc * L, L, p + P);
                      const int64_t c = bc % C;
                      for (int64_t i = 0; i < L; ++i) {
                        double s = bv[static_cast<size_t>(c)];
                        for (int64_t j = 0; j < k; ++j) s += wv[static_cast<size_t>(c * k + j)] * p[i + j];
                        out[static_cast<size_t>(bc * L + i)] = s;
                      }
                    }
                    Tensor& y = ec.output(0, t, {B, C, L});
                    convert_elements(DType::F64, out.data(), t, y.raw(), B * C * L);
                    if (silu) {
                      // Like the reference: round the convolution to the output type, then x * sigmoid(x) in float.
                      visit_numeric_half(t, [&](auto tag) {
                        using TT = typename decltype(tag)::type;
                        TT* py = y.data<TT>();
                        for (int64_t i = 0; i < B * C * L; ++i) {
                          const float v = static_cast<float>(to_compute(py[i]));
                          py[i] = from_compute<TT>(static_cast<compute_t<TT>>(v * (1.f / (1.f + std::exp(-v)))));
                        }
                      });
                    }
                    if (ec.num_outputs() > 1 && ec.wants_output(1)) {
                      Tensor& s = ec.output(1, t, {B, C, P});
                      std::vector<double> st(static_cast<size_t>(B * C * P));
                      for (int64_t bc = 0; bc < B * C; ++bc) std::copy_n(padded.data() + bc * T + L, P, st.data() + bc * P);
                      if (!st.empty()) convert_elements(DType::F64, st.data(), t, s.raw(), B * C * P);
                    }
                  });
                }});
}
}  // namespace quiver::onnx
