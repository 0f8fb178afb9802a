// Scan (opset 9+): iterates `body` over slices of the scan inputs along their scan axes (forward or
// reverse), carrying state; scan outputs are stacked along scan_output_axes (optionally reversed).
// Body inputs: state..., scan input slices...; then outer-scope values. Body outputs: state...,
// scan output slices...
#include "onnx/ops/subgraph_util.hpp"

namespace quiver::onnx {

namespace {

class ScanKernel final : public Kernel {
 public:
  ScanKernel(Subgraph body, size_t n_state, size_t n_in, size_t n_out, std::vector<int64_t> in_axes,
             std::vector<int64_t> in_dirs, std::vector<int64_t> out_axes, std::vector<int64_t> out_dirs)
      : body_(std::move(body)), nst_(n_state), nin_(n_in), nout_(n_out), in_axes_(std::move(in_axes)),
        in_dirs_(std::move(in_dirs)), out_axes_(std::move(out_axes)), out_dirs_(std::move(out_dirs)) {}

  void run(ExecContext& ec) const override {
    std::vector<Tensor> cur(nst_), next(nst_), slices(nin_);
    for (size_t i = 0; i < nst_; ++i) assign_tensor(cur[i], ec.input(i));
    int64_t T = -1;
    std::vector<int64_t> ax(nin_);
    for (size_t j = 0; j < nin_; ++j) {
      const Tensor& s = ec.input(nst_ + j);
      ax[j] = norm_axis(in_axes_[j], static_cast<int64_t>(s.rank()), &ec);
      const int64_t len = s.dim(ax[j]);
      if (T >= 0 && len != T) ec.fail("scan inputs have different sequence lengths " + std::to_string(T) + " and " + std::to_string(len));
      T = len;
    }
    if (T < 0) ec.fail("Scan needs at least one scan input");
    std::vector<const Tensor*> in(nst_ + nin_ + body_.outer_inputs.size());
    for (size_t i = 0; i < body_.outer_inputs.size(); ++i) in[nst_ + nin_ + i] = ec.input_ptr(body_.outer_inputs[i]);
    PlanState& st = ec.subgraph_state(0);
    std::vector<Tensor*> outs(nout_, nullptr);
    std::vector<int64_t> oax(nout_);
    for (int64_t t = 0; t < T; ++t) {
      for (size_t j = 0; j < nin_; ++j) {
        const Tensor& s = ec.input(nst_ + j);
        const int64_t tt = in_dirs_[j] ? T - 1 - t : t;
        slice(s, ax[j], tt, slices[j]);
        in[nst_ + j] = &slices[j];
      }
      for (size_t i = 0; i < nst_; ++i) in[i] = &cur[i];
      body_.plan->run(in, st);
      for (size_t i = 0; i < nst_; ++i) assign_tensor(next[i], body_.plan->result(i, st));
      std::swap(cur, next);
      for (size_t k = 0; k < nout_; ++k) {
        const Tensor& e = body_.plan->result(nst_ + k, st);
        const int64_t r = static_cast<int64_t>(e.rank()) + 1;
        if (t == 0) {
          oax[k] = norm_axis(out_axes_[k], r, &ec);
          std::vector<int64_t> od(e.dims());
          od.insert(od.begin() + oax[k], T);
          outs[k] = &ec.output(nst_ + k, e.dtype(), od);
        }
        Tensor& o = *outs[k];
        std::vector<int64_t> expect(o.dims());
        expect.erase(expect.begin() + oax[k]);
        if (expect != e.dims() || e.dtype() != o.dtype()) ec.fail("scan output " + std::to_string(k) + " changes shape between iterations");
        const int64_t tt = out_dirs_[k] ? T - 1 - t : t;
        const int64_t outer = product(e.dims(), 0, oax[k]), inner = product(e.dims(), oax[k]);
        const size_t esz = dtype_size(e.dtype());
        for (int64_t oo = 0; oo < outer; ++oo)
          copy_elements(e.dtype(), static_cast<const char*>(e.raw()) + oo * inner * esz,
                        static_cast<char*>(o.raw()) + ((oo * T + tt) * inner) * esz, static_cast<size_t>(inner));
      }
    }
    for (size_t i = 0; i < nst_; ++i) copy_to_output(ec, i, cur[i]);
    if (T == 0)
      for (size_t k = 0; k < nout_; ++k) ec.output(nst_ + k, DType::F32, {0});
  }

 private:
  static void slice(const Tensor& s, int64_t axis, int64_t t, Tensor& dst) {
    std::vector<int64_t> d(s.dims());
    const int64_t len = d[axis];
    d.erase(d.begin() + axis);
    dst.ensure(s.dtype(), d);
    const int64_t outer = product(s.dims(), 0, axis), inner = product(s.dims(), axis + 1);
    const size_t esz = dtype_size(s.dtype());
    for (int64_t o = 0; o < outer; ++o)
      copy_elements(s.dtype(), static_cast<const char*>(s.raw()) + ((o * len + t) * inner) * esz,
                    static_cast<char*>(dst.raw()) + o * inner * esz, static_cast<size_t>(inner));
  }
  Subgraph body_;
  size_t nst_, nin_, nout_;
  std::vector<int64_t> in_axes_, in_dirs_, out_axes_, out_dirs_;
};

// Scan-8: every input has a leading batch dim; optional sequence_lens (input 0) gives each batch
// row's length (scan outputs are zero beyond it); the scan axis is 1 and `directions` reverses inputs.
class Scan8Kernel final : public Kernel {
 public:
  Scan8Kernel(Subgraph body, size_t n_state, size_t n_in, size_t n_out, std::vector<int64_t> dirs)
      : body_(std::move(body)), nst_(n_state), nin_(n_in), nout_(n_out), dirs_(std::move(dirs)) {}

  void run(ExecContext& ec) const override {
    const size_t base = 1;  // input 0: sequence_lens (may be absent)
    const Tensor* sl = ec.has_input(0) ? ec.input_ptr(0) : nullptr;
    if (nin_ == 0) ec.fail("Scan needs at least one scan input");
    const Tensor& first = ec.input(base + nst_);
    if (first.rank() < 2) ec.fail("scan inputs must be [batch, sequence, ...]");
    const int64_t B = first.dim(0), T = first.dim(1);
    std::vector<int64_t> lens(static_cast<size_t>(B), T);
    if (sl && sl->numel() > 0) {
      lens = read_ints(*sl);
      if (static_cast<int64_t>(lens.size()) != B) ec.fail("sequence_lens must have one value per batch row");
      for (int64_t l : lens)
        if (l < 0 || l > T) ec.fail("sequence_lens value " + std::to_string(l) + " outside [0, " + std::to_string(T) + "]");
    }
    for (size_t i = 0; i < nst_ + nin_; ++i) {
      const Tensor& t = ec.input(base + i);
      if (t.rank() < 1 || t.dim(0) != B) ec.fail("input " + std::to_string(base + i) + " must have batch dim " + std::to_string(B));
      if (i >= nst_ && (t.rank() < 2 || t.dim(1) != T)) ec.fail("scan inputs must share the sequence length " + std::to_string(T));
    }
    std::vector<Tensor> cur(nst_), next(nst_), slices(nin_);
    std::vector<const Tensor*> in(nst_ + nin_ + body_.outer_inputs.size());
    for (size_t i = 0; i < body_.outer_inputs.size(); ++i) in[nst_ + nin_ + i] = ec.input_ptr(body_.outer_inputs[i]);
    PlanState& st = ec.subgraph_state(0);
    std::vector<Tensor*> outs(nout_, nullptr);
    std::vector<Tensor*> state_out(nst_, nullptr);
    for (int64_t b = 0; b < B; ++b) {
      for (size_t i = 0; i < nst_; ++i) row(ec.input(base + i), b, cur[i]);
      for (int64_t t = 0; t < lens[b]; ++t) {
        for (size_t j = 0; j < nin_; ++j) {
          const Tensor& s = ec.input(base + nst_ + j);
          const int64_t tt = dirs_[j] ? lens[b] - 1 - t : t;
          row2(s, b, tt, slices[j]);
          in[nst_ + j] = &slices[j];
        }
        for (size_t i = 0; i < nst_; ++i) in[i] = &cur[i];
        body_.plan->run(in, st);
        for (size_t i = 0; i < nst_; ++i) assign_tensor(next[i], body_.plan->result(i, st));
        std::swap(cur, next);
        for (size_t k = 0; k < nout_; ++k) {
          const Tensor& e = body_.plan->result(nst_ + k, st);
          if (!outs[k]) {
            std::vector<int64_t> od = {B, T};
            od.insert(od.end(), e.dims().begin(), e.dims().end());
            outs[k] = &ec.output(nst_ + k, e.dtype(), od);
            std::memset(outs[k]->raw(), 0, outs[k]->nbytes());
          }
          if (e.numel() * T * B != outs[k]->numel()) ec.fail("scan output " + std::to_string(k) + " changes shape");
          const size_t esz = dtype_size(e.dtype());
          copy_elements(e.dtype(), e.raw(), static_cast<char*>(outs[k]->raw()) + ((b * T + t) * e.numel()) * esz,
                        static_cast<size_t>(e.numel()));
        }
      }
      for (size_t i = 0; i < nst_; ++i) {
        if (!state_out[i]) {
          std::vector<int64_t> od = {B};
          od.insert(od.end(), cur[i].dims().begin(), cur[i].dims().end());
          state_out[i] = &ec.output(i, cur[i].dtype(), od);
        }
        const size_t esz = dtype_size(cur[i].dtype());
        if (cur[i].numel() * B != state_out[i]->numel()) ec.fail("state " + std::to_string(i) + " changes shape");
        copy_elements(cur[i].dtype(), cur[i].raw(), static_cast<char*>(state_out[i]->raw()) + b * cur[i].numel() * esz,
                      static_cast<size_t>(cur[i].numel()));
      }
    }
  }

 private:
  // dst = t[b]
  static void row(const Tensor& t, int64_t b, Tensor& dst) {
    std::vector<int64_t> d(t.dims().begin() + 1, t.dims().end());
    dst.ensure(t.dtype(), d);
    const size_t esz = dtype_size(t.dtype());
    copy_elements(t.dtype(), static_cast<const char*>(t.raw()) + b * dst.numel() * esz, dst.raw(), static_cast<size_t>(dst.numel()));
  }
  // dst = t[b, i]
  static void row2(const Tensor& t, int64_t b, int64_t i, Tensor& dst) {
    std::vector<int64_t> d(t.dims().begin() + 2, t.dims().end());
    dst.ensure(t.dtype(), d);
    const size_t esz = dtype_size(t.dtype());
    copy_elements(t.dtype(), static_cast<const char*>(t.raw()) + (b * t.dim(1) + i) * dst.numel() * esz, dst.raw(),
                  static_cast<size_t>(dst.numel()));
  }
  Subgraph body_;
  size_t nst_, nin_, nout_;
  std::vector<int64_t> dirs_;
};

}  // namespace

QUIVER_REGISTER_OPS(scan) {
  registry.add({"", "Scan", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  if (ctx.opset() < 9) {
                    const int64_t m8 = ctx.attrs().req_int("num_scan_inputs");
                    if (m8 < 1 || static_cast<size_t>(m8) + 1 > ctx.num_inputs()) ctx.fail("num_scan_inputs out of range");
                    const size_t nin8 = static_cast<size_t>(m8), nst8 = ctx.num_inputs() - 1 - nin8;
                    const size_t nbo8 = subgraph_num_outputs(ctx, "body");
                    if (nbo8 < nst8) ctx.fail("body has fewer outputs than state variables");
                    auto dirs = ctx.attrs().get_ints("directions", std::vector<int64_t>(nin8, 0));
                    if (dirs.size() != nin8) ctx.fail("directions must have num_scan_inputs values");
                    std::vector<ValueInfo> formal(nst8 + nin8);
                    for (size_t i = 0; i < nst8 + nin8; ++i) formal[i].dtype = ctx.input_dtype(1 + i);
                    for (size_t i = 0; i < nst8; ++i) ctx.set_output(i, ctx.input_dtype(1 + i));
                    for (size_t k = 0; k < nbo8 - nst8; ++k) {
                      DType dt = subgraph_output_dtype_any(ctx, "body", nst8 + k, formal);
                      if (dt == DType::Undefined) ctx.unsupported("scan output without declared tensor type");
                      ctx.set_output(nst8 + k, dt);
                    }
                    Subgraph body = ctx.compile_subgraph("body", formal);
                    return std::make_unique<Scan8Kernel>(std::move(body), nst8, nin8, nbo8 - nst8, std::move(dirs));
                  }
                  const auto& at = ctx.attrs();
                  const int64_t m = at.req_int("num_scan_inputs");
                  const size_t nin = static_cast<size_t>(m);
                  if (m < 1 || nin > ctx.num_inputs()) ctx.fail("num_scan_inputs out of range");
                  const size_t nst = ctx.num_inputs() - nin;
                  const size_t nbo = subgraph_num_outputs(ctx, "body");
                  if (nbo < nst) ctx.fail("body has fewer outputs than state variables");
                  const size_t nout = nbo - nst;
                  auto in_axes = at.get_ints("scan_input_axes", std::vector<int64_t>(nin, 0));
                  auto in_dirs = at.get_ints("scan_input_directions", std::vector<int64_t>(nin, 0));
                  auto out_axes = at.get_ints("scan_output_axes", std::vector<int64_t>(nout, 0));
                  auto out_dirs = at.get_ints("scan_output_directions", std::vector<int64_t>(nout, 0));
                  if (in_axes.size() != nin || in_dirs.size() != nin || out_axes.size() != nout || out_dirs.size() != nout)
                    ctx.fail("scan axes/directions attribute sizes do not match the number of scan inputs/outputs");
                  std::vector<ValueInfo> formal(nst + nin);
                  for (size_t i = 0; i < nst + nin; ++i) {
                    formal[i].dtype = ctx.input_dtype(i);
                    if (formal[i].dtype == DType::Undefined) ctx.unsupported("non-tensor Scan input");
                  }
                  for (size_t i = 0; i < nst; ++i) ctx.set_output(i, ctx.input_dtype(i));
                  for (size_t k = 0; k < nout; ++k) {
                    DType dt = subgraph_output_dtype_any(ctx, "body", nst + k, formal);
                    if (dt == DType::Undefined) ctx.unsupported("scan output without declared tensor type");
                    ctx.set_output(nst + k, dt);
                  }
                  Subgraph body = ctx.compile_subgraph("body", formal);
                  return std::make_unique<ScanKernel>(std::move(body), nst, nin, nout, std::move(in_axes), std::move(in_dirs),
                                                      std::move(out_axes), std::move(out_dirs));
                }});
}

}  // namespace quiver::onnx
