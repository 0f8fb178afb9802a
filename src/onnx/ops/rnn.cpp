// RNN (ai.onnx): see rnn_common.hpp for the shared recurrent implementation; the vectorised gate
// passes it calls are in src/onnx/rnn_kernels.cpp. This file also holds the recurrent ops' code emitter.
#include "onnx/emit.hpp"

#include "onnx/ops/rnn_common.hpp"

namespace quiver::onnx {

// quiver compile (RNN, GRU and LSTM, whose shared implementation is rnn_common.hpp): the cell as rt::recurrent with W^T and R^T
// packed for its gemms and the biases folded at compile time, exactly as the CPU kernel folds them.
// quiver compile --reproducible: RecurrentKernel's reproducible path as rr::recurrent (the same GEMM
// chains, folded bias and gate arithmetic in its order), W^T and R^T as the kernel packs them.
// What both emitted variants share: the folded bias (the kernel adds wb[j] + (keep_rb ? 0 : rb[j]) to
// each input projection: that sum, made here; GRU's Rb of the h gate apart with linear_before_reset),
// the activations as `{kind, alpha, beta}` initialisers, and the outputs' dims.
struct RecurrentCommon {
  std::string bias = "nullptr", rbh = "nullptr", acts, T, B, H, D;
  size_t acts_per_dir = 1;
};
inline RecurrentCommon emit_recurrent_common(Emit& e, CellKind kind, int64_t D, int layout, bool lbr, int64_t H, int64_t I) {
  const int64_t GH = (kind == CellKind::LSTM ? 4 : kind == CellKind::GRU ? 3 : 1) * H;
  RecurrentCommon rc;
  const Tensor* bt = e.has_input(3) && e.in(3).constant && e.in(3).constant->numel() > 0 ? e.in(3).constant.get() : nullptr;
  if (bt) {
    if (bt->numel() != D * 2 * GH) e.refuse("B has the wrong size");
    Tensor fb = Tensor::empty(DType::F32, {D, GH}), rb = Tensor::empty(DType::F32, {D, H});
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < GH; ++j) {
        const float wb = bt->data<float>()[d * 2 * GH + j], rbv = bt->data<float>()[d * 2 * GH + GH + j];
        const bool keep_rb = lbr && j >= 2 * H;
        fb.data<float>()[d * GH + j] = wb + (keep_rb ? 0.0f : rbv);
        if (keep_rb) rb.data<float>()[d * H + j - 2 * H] = rbv;
      }
    rc.bias = e.add_const(std::move(fb));
    if (lbr) rc.rbh = e.add_const(std::move(rb));
  }
  const auto acts = parse_rnn_activations(e.attrs(), kind, D);
  for (const auto& a : acts)
    rc.acts += "{" + std::to_string(static_cast<int>(a.kind)) + ", " + cfloat(a.alpha) + ", " + cfloat(a.beta) + "}, ";
  rc.acts_per_dir = acts.size() / static_cast<size_t>(D);
  for (size_t i = 1; i < e.num_inputs(); ++i)
    if (e.has_input(i) && i != 4 && i != 5 && i != 6 && i != 7) e.dims_only(i);
  rc.T = layout == 0 ? "I0.d[0]" : "I0.d[1]";
  rc.B = layout == 0 ? "I0.d[1]" : "I0.d[0]";
  rc.H = std::to_string(H);
  rc.D = std::to_string(D);
  e.shape("if (I0.d[2] != " + std::to_string(I) + ") fail(\"X has the wrong input size\");\n");
  if (layout == 0) e.set_dims(0, {rc.T, rc.D, rc.B, rc.H});
  else e.set_dims(0, {rc.B, rc.T, rc.D, rc.H});
  const std::vector<std::string> st = layout == 0 ? std::vector<std::string>{rc.D, rc.B, rc.H} : std::vector<std::string>{rc.B, rc.D, rc.H};
  for (size_t k = 1; k < e.num_outputs(); ++k) e.set_dims(k, st);
  if (e.has_input(4) && e.in(4).dtype != DType::I32 && e.in(4).dtype != DType::I64) e.refuse("sequence_lens type");
  return rc;
}

inline void emit_recurrent_repro(Emit& e, CellKind kind, int64_t D, int layout, const std::string& dir, bool lbr,
                                 const Tensor& w, const Tensor& r) {
  const auto& at = e.attrs();
  const int64_t G = kind == CellKind::LSTM ? 4 : kind == CellKind::GRU ? 3 : 1;
  const int64_t H = r.dim(2), GH = G * H, I = w.dim(2);
  Tensor wt = Tensor::empty(DType::F32, {D * I * GH}), rt = Tensor::empty(DType::F32, {D * H * GH});
  for (int64_t d = 0; d < D; ++d) {
    RecurrentKernel::transpose_into(w.data<float>() + d * GH * I, GH, I, wt.data<float>() + d * I * GH, GH);
    RecurrentKernel::transpose_into(r.data<float>() + d * GH * H, GH, H, rt.data<float>() + d * H * GH, GH);
  }
  const RecurrentCommon rc = emit_recurrent_common(e, kind, D, layout, lbr, H, I);
  const std::string &T = rc.T, &B = rc.B, &Hs = rc.H, &Ds = rc.D;
  // As the kernel's opt(): an absent or empty optional input is none.
  auto opt = [&](size_t i) {
    return e.has_input(i) ? "(I" + std::to_string(i) + ".n() > 0 ? x" + std::to_string(i) + " : nullptr)" : std::string("nullptr");
  };
  std::string c = "static const rr::RnnAct acts[] = {" + rc.acts + "};\nrr::Rec a;\na.cell = " +
                  std::to_string(kind == CellKind::LSTM ? 2 : kind == CellKind::GRU ? 1 : 0) + ";\na.T = " + T + ";\na.B = " + B +
                  ";\na.I = " + std::to_string(I) + ";\na.H = " + Hs + ";\na.D = " + Ds + ";\na.layout = " + std::to_string(layout) +
                  ";\na.reverse_only = " + (dir == "reverse" ? "true" : "false") + ";\na.input_forget = " +
                  (at.get_int("input_forget", 0) != 0 ? "true" : "false") + ";\na.lbr = " + (lbr ? "true" : "false") +
                  ";\na.clip = " + cfloat(at.has("clip") ? at.get_float("clip", 0) : 0) + ";\na.X = x0;\na.Wt = " +
                  e.add_const(std::move(wt)) + ";\na.Rt = " + e.add_const(std::move(rt)) + ";\na.bias = " + rc.bias + ";\na.rbh = " + rc.rbh +
                  ";\n";
  if (e.has_input(4)) {
    c += "if (I4.n() > 0 && I4.n() != " + B + ") fail(\"sequence_lens has the wrong size\");\n";
    c += std::string(e.in(4).dtype == DType::I32 ? "a.lens32" : "a.lens64") + " = " + opt(4) + ";\n";
  }
  if (e.has_input(5)) c += "if (I5.n() > 0 && I5.n() != " + Ds + " * " + B + " * " + Hs + ") fail(\"initial_h has the wrong size\");\n";
  if (kind == CellKind::LSTM && e.has_input(6))
    c += "if (I6.n() > 0 && I6.n() != " + Ds + " * " + B + " * " + Hs + ") fail(\"initial_c has the wrong size\");\n";
  if (kind == CellKind::LSTM && e.has_input(7))
    c += "if (I7.n() > 0 && I7.n() != " + Ds + " * 3 * " + Hs + ") fail(\"P has the wrong size\");\n";
  c += "a.h0 = " + opt(5) + ";\n";
  if (kind == CellKind::LSTM) c += "a.c0 = " + opt(6) + ";\na.P = " + opt(7) + ";\n";
  c += "a.Y = y0;\n";
  if (e.num_outputs() > 1) c += "a.Yh = y1;\n";
  if (e.num_outputs() > 2) c += "a.Yc = y2;\n";
  c += "a.work = static_cast<unsigned char*>(scratch);\na.acts = acts;\na.acts_per_dir = " +
       std::to_string(rc.acts_per_dir) + ";\nif (!rr::recurrent(a)) fail(\"sequence_lens value outside [0, T]\");\n";
  e.scratch("rr::rec_work_bytes(" + std::to_string(G) + ", " + T + ", " + B + ", " + Hs + ")");
  e.compute(c);
  e.bitwise();
}

inline Emitter emit_recurrent(CellKind kind) {
  return [kind](Emit& e) {
    const auto& at = e.attrs();
    const int64_t G = kind == CellKind::LSTM ? 4 : kind == CellKind::GRU ? 3 : 1;
    const std::string dir = at.get_string("direction", "forward");
    const int64_t D = dir == "bidirectional" ? 2 : 1;
    const int layout = static_cast<int>(at.get_int("layout", 0));
    if (!e.in(1).constant || !e.in(2).constant) e.refuse("W and R computed at run time");
    for (size_t i = 3; i < e.num_inputs(); ++i)
      if (e.has_input(i) && i != 4 && i != 5 && i != 6 && !e.in(i).constant) e.refuse("B or P computed at run time");
    if (e.rank_in(0) != 3) e.refuse("X must be 3-D");
    const Tensor& w = *e.in(1).constant;
    const Tensor& r = *e.in(2).constant;
    const int64_t H = r.dim(2), GH = G * H, I = w.dim(2);
    if (w.rank() != 3 || w.dim(0) != D || w.dim(1) != GH || r.dim(0) != D || r.dim(1) != GH) e.refuse("W/R shapes");
    const bool lbr = at.get_int("linear_before_reset", 0) != 0 && kind == CellKind::GRU;
    if (e.reproducible()) {
      emit_recurrent_repro(e, kind, D, layout, dir, lbr, w, r);
      return;
    }
    // W^T and R^T in the gemm's panel layout: W is [D][G*H][I], so B(k = i, j) = W[j * I + i].
    const std::string wp = e.add_packed_b(w.data<float>(), I, GH, 1, I, D, GH * I);
    std::string rp;
    if (kind == CellKind::GRU) {
      // Per direction R_zr^T [H][2H], then R_h^T [H][H] (it multiplies r * h, known only after z and r).
      const int64_t zr = packed_b_floats(H, 2 * H), hh = packed_b_floats(H, H);
      Tensor packed = Tensor::empty(DType::F32, {D * (zr + hh)});
      float* out = packed.data<float>();
      std::fill(out, out + D * (zr + hh), 0.0f);
      for (int64_t d = 0; d < D; ++d) {
        const float* rd = r.data<float>() + d * GH * H;
        for (int64_t j = 0; j < GH; ++j) {
          const bool zr_part = j < 2 * H;
          const int64_t jj = zr_part ? j : j - 2 * H;
          float* panel = out + d * (zr + hh) + (zr_part ? 0 : zr) + jj / kGemmPanel * kGemmPanel * H + jj % kGemmPanel;
          for (int64_t k = 0; k < H; ++k) panel[k * kGemmPanel] = rd[j * H + k];
        }
      }
      rp = e.add_const(std::move(packed));
    } else {
      rp = e.add_packed_b(r.data<float>(), H, GH, 1, H, D, GH * H);
    }
    const RecurrentCommon rc = emit_recurrent_common(e, kind, D, layout, lbr, H, I);
    const std::string &T = rc.T, &B = rc.B, &Hs = rc.H, &Ds = rc.D, &bias = rc.bias, &rbh = rc.rbh, &al = rc.acts;
    auto opt = [&](size_t i) { return e.has_input(i) ? "x" + std::to_string(i) : std::string("nullptr"); };
    std::string c = "static const rt::RnnAct acts[] = {" + al + "};\nrt::RecArgs a;\na.cell = " +
                    std::to_string(kind == CellKind::LSTM ? 2 : kind == CellKind::GRU ? 1 : 0) + ";\na.T = " + T +
                    ";\na.B = " + B + ";\na.I = " + std::to_string(I) + ";\na.H = " + Hs + ";\na.D = " + Ds +
                    ";\na.layout = " + std::to_string(layout) + ";\na.reverse_only = " + (dir == "reverse" ? "true" : "false") +
                    ";\na.input_forget = " + (at.get_int("input_forget", 0) != 0 ? "true" : "false") +
                    ";\na.lbr = " + (lbr ? "true" : "false") + ";\na.clip = " + cfloat(at.has("clip") ? at.get_float("clip", 0) : 0) +
                    ";\na.X = x0;\na.Wp = " + wp + ";\na.Rp = " + rp +
                    ";\na.bias = " + bias + ";\na.rbh = " + rbh + ";\n";
    if (e.has_input(4)) c += std::string(e.in(4).dtype == DType::I32 ? "a.lens32" : "a.lens64") + " = x4;\n";
    if (e.has_input(5)) c += "if (I5.n() != " + Ds + " * " + B + " * " + Hs + ") fail(\"initial_h has the wrong size\");\n";
    if (kind == CellKind::LSTM && e.has_input(6)) c += "if (I6.n() != " + Ds + " * " + B + " * " + Hs + ") fail(\"initial_c has the wrong size\");\n";
    c += "a.h0 = " + opt(5) + ";\n";
    if (kind == CellKind::LSTM) c += "a.c0 = " + opt(6) + ";\na.P = " + opt(7) + ";\n";
    c += "a.Y = y0;\n";
    if (e.num_outputs() > 1) c += "a.Yh = y1;\n";
    if (e.num_outputs() > 2) c += "a.Yc = y2;\n";
    c += "a.work = static_cast<float*>(scratch);\na.acts = acts;\na.acts_per_dir = " + std::to_string(rc.acts_per_dir) + ";\n";
    const std::string general_bytes = "rt::recurrent_work_bytes(" + std::to_string(G) + ", " + T + ", " + B + ", " + Hs + ")";
    // The engine's batched LSTM (RecurrentKernel::lstm_batched) where the cell allows it: the generated
    // code takes it for batches of kBatchedRows+ rows whose sequences are all T long, else rt::recurrent.
    const bool batched = !e.has_input(7) && lstm_default_cell(kind, at.has("clip") ? at.get_float("clip", 0) : 0,
                                                               at.get_int("input_forget", 0) != 0,
                                                               parse_rnn_activations(at, kind, D));
    if (kind == CellKind::LSTM) c += "const rt::FlushSubnormals flush;  // saturated gates make subnormal products\n";
    if (!batched) {
      c += "if (!rt::recurrent(a)) fail(\"sequence_lens value outside [0, T]\");\n";
      e.scratch(general_bytes);
      e.compute(c);
      return;
    }
    const int64_t K = I + H;
    Tensor wr = Tensor::empty(DType::F32, {D * GH * K});
    for (int64_t d = 0; d < D; ++d)
      RecurrentKernel::concat_wr(w.data<float>() + d * GH * I, r.data<float>() + d * GH * H, GH, I, H, wr.data<float>() + d * GH * K);
    const std::string wrp = e.add_packed_b(wr.data<float>(), K, GH, 1, K, D, GH * K);
    const std::string rows = std::to_string(RecurrentKernel::kBatchedRows);
    const std::string lens = e.has_input(4) ? (e.in(4).dtype == DType::I32 ? "a.lens32" : "a.lens64") : "static_cast<const int32_t*>(nullptr)";
    c += "if (a.B >= " + rows + " && rt::full_length(" + lens + ", a.B, a.T)) {  // the batched form\n"
         "  rt::LstmBatchArgs t;\n  t.T = a.T;\n  t.B = a.B;\n  t.I = a.I;\n  t.H = a.H;\n  t.D = a.D;\n  t.layout = a.layout;\n"
         "  t.reverse_only = a.reverse_only;\n  t.X = a.X;\n  t.Wp = a.Wp;\n  t.WRp = " + wrp +
         ";\n  t.bias = a.bias;\n  t.h0 = a.h0;\n  t.c0 = a.c0;\n  t.Y = a.Y;\n  t.Yh = a.Yh;\n  t.Yc = a.Yc;\n  t.work = a.work;\n"
         "  rt::lstm_batch(t);\n} else if (!rt::recurrent(a)) {\n  fail(\"sequence_lens value outside [0, T]\");\n}\n";
    // Scratch for the form the call will take; with sequence_lens either form (it depends on the values).
    const std::string t_bytes = "rt::lstm_batch_work_bytes(" + B + ", " + std::to_string(I) + ", " + Hs + ")";
    const std::string big = e.has_input(4) ? "std::max<int64_t>(" + t_bytes + ", " + general_bytes + ")" : t_bytes;
    e.scratch("(" + B + " >= " + rows + " ? " + big + " : " + general_bytes + ")");
    e.compute(c);
  };
}

QUIVER_REGISTER_OPS(rnn) {
  registry.add({"", "RNN", [](BuildContext& ctx) { return build_recurrent(ctx, CellKind::RNN); }}, Repro::Variant);
}

QUIVER_REGISTER_EMITTERS(rnn) {
  emitters.add("", "RNN", emit_recurrent(CellKind::RNN));
  emitters.add("", "GRU", emit_recurrent(CellKind::GRU));
  emitters.add("", "LSTM", emit_recurrent(CellKind::LSTM));
}
}  // namespace quiver::onnx
