// Attention (opset 23/24): scaled dot-product attention over 4-D [B, heads, S, D] or 3-D
// [B, S, heads * D] inputs, with grouped KV heads (GQA), past_key/past_value concatenation
// (present_key/present_value outputs), bool or additive attn_mask (padded with "masked" up to the total
// sequence length), is_causal (bottom-right aligned after the past), nonpad_kv_seqlen (opset 24), scale
// (default 1/sqrt(D)), softcap (applied before the mask) and the qk_matmul_output output
// (qk_matmul_output_mode 0/1: scaled and softcapped QK^T, 2: plus the mask, 3: the softmax).
// Computed in double per (batch, head, query) row; the softmax follows numpy (max-shift, exp, divide).
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

struct View4 {  // logical [B, H, S, D] view of a 3-D or 4-D tensor, as doubles
  std::vector<double> v;
  int64_t B = 0, H = 0, S = 0, D = 0;
  bool three = false;
  double at(int64_t b, int64_t h, int64_t s, int64_t d) const {
    if (three) return v[static_cast<size_t>((b * S + s) * H * D + h * D + d)];
    return v[static_cast<size_t>(((b * H + h) * S + s) * D + d)];
  }
};

View4 view4(ExecContext& ec, const Tensor& t, int64_t heads, const char* what) {
  View4 r;
  r.v.resize(static_cast<size_t>(t.numel()));
  if (t.numel()) convert_elements(t.dtype(), t.raw(), DType::F64, r.v.data(), t.numel());
  if (t.rank() == 4) {
    r.B = t.dim(0); r.H = t.dim(1); r.S = t.dim(2); r.D = t.dim(3);
  } else if (t.rank() == 3) {
    if (heads <= 0 || t.dim(2) % heads != 0)
      ec.fail(std::string(what) + " is 3-D but q_num_heads / kv_num_heads do not divide its hidden size", what);
    r.three = true;
    r.B = t.dim(0); r.S = t.dim(1); r.H = heads; r.D = t.dim(2) / heads;
  } else {
    ec.fail(std::string(what) + " must be 3-D or 4-D, got " + dims_to_string(t.dims()), what);
  }
  return r;
}

}  // namespace

QUIVER_REGISTER_OPS(attention) {
  registry.add({"", "Attention", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 7);
                  const DType t = ctx.input_dtype(0);
                  if (!dtype_is_float(t)) ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  const auto& A = ctx.attrs();
                  const bool causal = A.get_int("is_causal", 0) != 0;
                  const int64_t qh_attr = A.get_int("q_num_heads", 0), kvh_attr = A.get_int("kv_num_heads", 0);
                  const bool has_scale = A.has("scale");
                  const double scale_attr = A.get_float("scale", 1.f);
                  const double softcap = A.get_float("softcap", 0.f);
                  const int64_t mode = A.get_int("qk_matmul_output_mode", 0);
                  for (size_t o = 0; o < ctx.num_outputs(); ++o) ctx.set_output(o, t);
                  return make_kernel([=](ExecContext& ec) {
                    const View4 Q = view4(ec, ec.input(0), qh_attr, "Q");
                    const View4 K = view4(ec, ec.input(1), kvh_attr, "K");
                    const View4 V = view4(ec, ec.input(2), kvh_attr, "V");
                    if (K.B != Q.B || V.B != Q.B || K.S != V.S || K.H != V.H || K.D != Q.D)
                      ec.fail("Q, K, V shapes are inconsistent");
                    const int64_t B = Q.B, qH = Q.H, kvH = K.H, Sq = Q.S, D = Q.D, Dv = V.D;
                    if (kvH <= 0 || qH % kvH != 0) ec.fail("q heads must be a multiple of kv heads");
                    const int64_t reps = qH / kvH;
                    // past + current keys / values -> present [B, kvH, total, D]
                    const Tensor* pk = ec.has_input(4) ? &ec.input(4) : nullptr;
                    const Tensor* pv = ec.has_input(5) ? &ec.input(5) : nullptr;
                    const int64_t past = pk ? pk->dim(2) : 0;
                    if (pk && (pk->rank() != 4 || pk->dim(0) != B || pk->dim(1) != kvH || pk->dim(3) != D)) ec.fail("past_key shape mismatch", "past_key");
                    if (pv && (pv->rank() != 4 || pv->dim(2) != past || pv->dim(3) != Dv)) ec.fail("past_value shape mismatch", "past_value");
                    const int64_t total = past + K.S;
                    std::vector<double> pkv, pvv;
                    if (pk) { pkv.resize(static_cast<size_t>(pk->numel())); convert_elements(pk->dtype(), pk->raw(), DType::F64, pkv.data(), pk->numel()); }
                    if (pv) { pvv.resize(static_cast<size_t>(pv->numel())); convert_elements(pv->dtype(), pv->raw(), DType::F64, pvv.data(), pv->numel()); }
                    std::vector<double> key(static_cast<size_t>(B * kvH * total * D)), val(static_cast<size_t>(B * kvH * total * Dv));
                    for (int64_t b = 0; b < B; ++b)
                      for (int64_t h = 0; h < kvH; ++h)
                        for (int64_t s = 0; s < total; ++s) {
                          for (int64_t d = 0; d < D; ++d)
                            key[static_cast<size_t>(((b * kvH + h) * total + s) * D + d)] =
                                s < past ? pkv[static_cast<size_t>(((b * kvH + h) * past + s) * D + d)] : K.at(b, h, s - past, d);
                          for (int64_t d = 0; d < Dv; ++d)
                            val[static_cast<size_t>(((b * kvH + h) * total + s) * Dv + d)] =
                                s < past ? pvv[static_cast<size_t>(((b * kvH + h) * past + s) * Dv + d)] : V.at(b, h, s - past, d);
                        }
                    // Mask, broadcast to [B, qH, Sq, total] (right-aligned), last dim padded as masked.
                    const Tensor* mask = ec.has_input(3) ? &ec.input(3) : nullptr;
                    std::vector<double> mv;
                    int64_t mst[4] = {0, 0, 0, 0}, mlast = 0;
                    const bool mbool = mask && mask->dtype() == DType::Bool;
                    if (mask) {
                      if (mask->rank() < 1 || mask->rank() > 4) ec.fail("attn_mask must have rank 1..4", "attn_mask");
                      mv.resize(static_cast<size_t>(mask->numel()));
                      if (!mbool) convert_elements(mask->dtype(), mask->raw(), DType::F64, mv.data(), mask->numel());
                      else for (size_t i = 0; i < mv.size(); ++i) mv[i] = mask->data<bool>()[i] ? 1.0 : 0.0;
                      const int64_t full[4] = {B, qH, Sq, total};
                      const size_t off = 4 - mask->rank();
                      int64_t s = 1;
                      for (size_t d = 4; d-- > off;) {
                        const int64_t md = mask->dim(d - off);
                        if (d == 3) { mlast = md; if (md > total) ec.fail("attn_mask is longer than the total sequence", "attn_mask"); }
                        else if (md != 1 && md != full[d]) ec.fail("attn_mask shape " + dims_to_string(mask->dims()) + " cannot be broadcast", "attn_mask");
                        mst[d] = (md == 1 && d != 3) ? 0 : s;
                        s *= md;
                      }
                    }
                    const Tensor* nonpad = ec.has_input(6) ? &ec.input(6) : nullptr;
                    std::vector<int64_t> np;
                    if (nonpad) { np = read_ints(*nonpad); if (static_cast<int64_t>(np.size()) != B) ec.fail("nonpad_kv_seqlen must have B entries"); }
                    const double scale = has_scale ? scale_attr : 1.0 / std::sqrt(static_cast<double>(D));
                    const double ninf = -std::numeric_limits<double>::infinity();
                    std::vector<double> y(static_cast<size_t>(B * qH * Sq * Dv)), qk_out(static_cast<size_t>(B * qH * Sq * total));
                    std::vector<double> row(static_cast<size_t>(total)), raw(static_cast<size_t>(total));
                    for (int64_t b = 0; b < B; ++b)
                      for (int64_t h = 0; h < qH; ++h) {
                        const int64_t kh = h / reps;
                        for (int64_t i = 0; i < Sq; ++i) {
                          for (int64_t j = 0; j < total; ++j) {
                            double s = 0;
                            const double* kp = key.data() + ((b * kvH + kh) * total + j) * D;
                            for (int64_t d = 0; d < D; ++d) s += Q.at(b, h, i, d) * kp[d];
                            s *= scale;
                            if (softcap > 0) s = softcap * std::tanh(s / softcap);
                            raw[static_cast<size_t>(j)] = s;
                            double bias = 0;
                            if (mask) {
                              if (j >= mlast) bias = ninf;
                              else {
                                const double m = mv[static_cast<size_t>(b * mst[0] + h * mst[1] + i * mst[2] + j * mst[3])];
                                bias = mbool ? (m != 0 ? 0.0 : ninf) : m;
                              }
                            }
                            if (causal) {
                              const int64_t offset = (!pk && nonpad) ? np[static_cast<size_t>(b)] - Sq : past;
                              if (j > i + offset) bias += ninf;
                            }
                            if (nonpad && j >= np[static_cast<size_t>(b)]) bias += ninf;
                            row[static_cast<size_t>(j)] = s + bias;
                          }
                          double* qo = qk_out.data() + ((b * qH + h) * Sq + i) * total;
                          if (mode == 2) std::copy(row.begin(), row.end(), qo);
                          else if (mode != 3) std::copy(raw.begin(), raw.end(), qo);
                          double mx = ninf;
                          for (double v : row) mx = std::max(mx, v);
                          double sum = 0;
                          for (double& v : row) { v = std::exp(v - mx); sum += v; }
                          for (double& v : row) v /= sum;
                          if (mode == 3) std::copy(row.begin(), row.end(), qo);
                          double* yo = y.data() + ((b * qH + h) * Sq + i) * Dv;
                          for (int64_t d = 0; d < Dv; ++d) {
                            double a = 0;
                            for (int64_t j = 0; j < total; ++j) a += row[static_cast<size_t>(j)] * val[static_cast<size_t>(((b * kvH + kh) * total + j) * Dv + d)];
                            yo[d] = a;
                          }
                        }
                      }
                    if (Q.three) {
                      Tensor& out = ec.output(0, t, {B, Sq, qH * Dv});
                      std::vector<double> tr(y.size());
                      for (int64_t b = 0; b < B; ++b)
                        for (int64_t h = 0; h < qH; ++h)
                          for (int64_t i = 0; i < Sq; ++i)
                            for (int64_t d = 0; d < Dv; ++d)
                              tr[static_cast<size_t>((b * Sq + i) * qH * Dv + h * Dv + d)] = y[static_cast<size_t>(((b * qH + h) * Sq + i) * Dv + d)];
                      convert_elements(DType::F64, tr.data(), t, out.raw(), static_cast<int64_t>(tr.size()));
                    } else {
                      Tensor& out = ec.output(0, t, {B, qH, Sq, Dv});
                      convert_elements(DType::F64, y.data(), t, out.raw(), static_cast<int64_t>(y.size()));
                    }
                    if (ec.num_outputs() > 1 && ec.wants_output(1)) {
                      Tensor& o = ec.output(1, t, {B, kvH, total, D});
                      convert_elements(DType::F64, key.data(), t, o.raw(), static_cast<int64_t>(key.size()));
                    }
                    if (ec.num_outputs() > 2 && ec.wants_output(2)) {
                      Tensor& o = ec.output(2, t, {B, kvH, total, Dv});
                      convert_elements(DType::F64, val.data(), t, o.raw(), static_cast<int64_t>(val.size()));
                    }
                    if (ec.num_outputs() > 3 && ec.wants_output(3)) {
                      Tensor& o = ec.output(3, t, {B, qH, Sq, total});
                      convert_elements(DType::F64, qk_out.data(), t, o.raw(), static_cast<int64_t>(qk_out.size()));
                    }
                  });
                }});
}
}  // namespace quiver::onnx
