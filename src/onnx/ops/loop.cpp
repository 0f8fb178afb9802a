// Loop: runs `body` while (trip count not reached) and (cond); carries the loop-carried values
// from one iteration to the next and stacks the scan outputs along a new first axis.
// Body inputs: iteration_num (int64 scalar), cond (bool scalar), carried...; then outer-scope values.
// Body outputs: cond, carried..., scan outputs...
#include <limits>

#include "onnx/ops/subgraph_util.hpp"

namespace quiver::onnx {

namespace {

class LoopKernel final : public Kernel {
 public:
  LoopKernel(Subgraph body, size_t n_carried, size_t n_scan) : body_(std::move(body)), nc_(n_carried), ns_(n_scan) {}

  void run(ExecContext& ec) const override {
    int64_t max_trip = std::numeric_limits<int64_t>::max();
    if (ec.has_input(0) && ec.input_ptr(0)) {
      const Tensor& m = ec.input(0);
      if (m.numel() != 1) ec.fail("M must be a scalar");
      max_trip = read_ints(m)[0];
    }
    bool cond = true;
    if (ec.has_input(1) && ec.input_ptr(1)) {
      const Tensor& c = ec.input(1);
      if (c.numel() != 1) ec.fail("cond must be a scalar");
      cond = scalar_truth(c);
    }
    std::vector<Tensor> cur(nc_), next(nc_);
    for (size_t i = 0; i < nc_; ++i) assign_tensor(cur[i], ec.input(2 + i));
    std::vector<std::vector<Tensor>> scans(ns_);
    Tensor iter = Tensor::scalar<int64_t>(0), cond_t = Tensor::scalar<bool>(cond);
    std::vector<const Tensor*> in(2 + nc_ + body_.outer_inputs.size());
    for (size_t i = 0; i < body_.outer_inputs.size(); ++i) in[2 + nc_ + i] = ec.input_ptr(body_.outer_inputs[i]);
    PlanState& st = ec.subgraph_state(0);
    int64_t it = 0;
    for (; it < max_trip && cond; ++it) {
      iter.data<int64_t>()[0] = it;
      cond_t.data<bool>()[0] = cond;
      in[0] = &iter;
      in[1] = &cond_t;
      for (size_t i = 0; i < nc_; ++i) in[2 + i] = &cur[i];
      body_.plan->run(in, st);
      const Tensor& c = body_.plan->result(0, st);
      if (c.numel() != 1) ec.fail("body cond output must be a scalar");
      cond = scalar_truth(c);
      for (size_t i = 0; i < nc_; ++i) assign_tensor(next[i], body_.plan->result(1 + i, st));
      std::swap(cur, next);
      for (size_t j = 0; j < ns_; ++j) {
        scans[j].emplace_back();
        assign_tensor(scans[j].back(), body_.plan->result(1 + nc_ + j, st));
      }
    }
    for (size_t i = 0; i < nc_; ++i) copy_to_output(ec, i, cur[i]);
    for (size_t j = 0; j < ns_; ++j) {
      if (!ec.wants_output(nc_ + j)) continue;
      const auto& v = scans[j];
      if (v.empty()) {
        ec.output(nc_ + j, scan_dtype(j), {0});
        continue;
      }
      std::vector<int64_t> dims = {static_cast<int64_t>(v.size())};
      dims.insert(dims.end(), v[0].dims().begin(), v[0].dims().end());
      Tensor& out = ec.output(nc_ + j, v[0].dtype(), dims);
      const size_t per = static_cast<size_t>(v[0].numel()), esz = dtype_size(v[0].dtype());
      for (size_t k = 0; k < v.size(); ++k) {
        if (v[k].dims() != v[0].dims())
          ec.fail("scan output " + std::to_string(j) + " changes shape between iterations: " + dims_to_string(v[0].dims()) +
                  " vs " + dims_to_string(v[k].dims()));
        copy_elements(v[k].dtype(), v[k].raw(), static_cast<char*>(out.raw()) + k * per * esz, per);
      }
    }
  }
  void set_scan_dtypes(std::vector<DType> d) { scan_dtypes_ = std::move(d); }

 private:
  DType scan_dtype(size_t j) const { return j < scan_dtypes_.size() ? scan_dtypes_[j] : DType::F32; }
  Subgraph body_;
  size_t nc_, ns_;
  std::vector<DType> scan_dtypes_;
};

}  // namespace

QUIVER_REGISTER_OPS(loop) {
  registry.add({"", "Loop", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  if (ctx.num_inputs() < 2) ctx.fail("Loop needs at least the M and cond inputs (may be empty)");
                  if (ctx.has_input(0)) ctx.expect_dtype(0, {DType::I64, DType::I32});
                  const size_t nc = ctx.num_inputs() - 2;
                  const size_t nbo = subgraph_num_outputs(ctx, "body");
                  if (nbo < 1 + nc) ctx.fail("body has " + std::to_string(nbo) + " outputs, needs at least " + std::to_string(1 + nc));
                  const size_t ns = nbo - 1 - nc;
                  std::vector<ValueInfo> formal(2 + nc);
                  formal[0].dtype = DType::I64;
                  formal[0].shape = std::vector<int64_t>{};
                  formal[1].dtype = DType::Bool;
                  formal[1].shape = std::vector<int64_t>{};
                  for (size_t i = 0; i < nc; ++i) {
                    if (!ctx.has_input(2 + i)) ctx.unsupported("Loop with an absent loop-carried input");
                    formal[2 + i].dtype = ctx.input_dtype(2 + i);
                    if (formal[2 + i].dtype == DType::Undefined) ctx.unsupported("non-tensor loop-carried value");
                  }
                  for (size_t i = 0; i < nbo; ++i)
                    if (subgraph_output_non_tensor(ctx, "body", i)) ctx.unsupported("Loop with sequence/optional values");
                  for (size_t i = 0; i < nc; ++i) ctx.set_output(i, ctx.input_dtype(2 + i));
                  std::vector<DType> sd;
                  for (size_t j = 0; j < ns; ++j) {
                    DType dt = subgraph_output_dtype_any(ctx, "body", 1 + nc + j, formal);
                    if (dt == DType::Undefined) ctx.unsupported("scan output " + std::to_string(j) + " has no declared tensor type");
                    sd.push_back(dt);
                    ctx.set_output(nc + j, dt);
                  }
                  Subgraph body = ctx.compile_subgraph("body", formal);
                  auto k = std::make_unique<LoopKernel>(std::move(body), nc, ns);
                  k->set_scan_dtypes(std::move(sd));
                  return k;
                }});
}

}  // namespace quiver::onnx
