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

}  // namespace

QUIVER_REGISTER_OPS(scan) {
  registry.add({"", "Scan", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  if (ctx.opset() < 9) ctx.unsupported("Scan-8 (batched form with sequence_lens)");
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
