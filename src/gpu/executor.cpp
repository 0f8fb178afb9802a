#include "gpu/executor.hpp"

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

#include "onnx/numerics.hpp"
#include "onnx/onnx_model_impl.hpp"
#include "onnx/ops/common.hpp"
#include "quiver/core/shape.hpp"
#include "quiver/core/util.hpp"

namespace quiver::gpu {

int64_t Val::numel() const { return quiver::numel(dims); }
size_t Val::nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }

std::vector<int64_t> OpCtx::ints(size_t i) { return onnx::read_ints(host(i)); }

void OpCtx::fail(const std::string& message, const std::string& tensor) const {
  throw Error(ErrorCode::InvalidArgument, message, {"", step.label, tensor});
}

// ---------------------------------------------------------------- kernel choice (at load) and shared helpers
void DeviceBuild::read_on_host(size_t i) {
  if (host_reads_.size() <= i) host_reads_.resize(i + 1, 0);
  host_reads_[i] = 1;
}

std::optional<std::vector<int64_t>> DeviceBuild::ints_or_host(size_t i) {
  if (auto v = const_ints(i)) return v;
  read_on_host(i);
  return std::nullopt;
}

DeviceOpBuilder DeviceOpTable::find(const std::string& domain, const std::string& op_type) const {
  auto it = ops_.find({domain == "ai.onnx" ? std::string() : domain, op_type});
  return it == ops_.end() ? nullptr : it->second;
}

namespace {

// Small integer values already on the host (shape arithmetic) stay there: a kernel launch and a
// transfer back would cost more than the work, and later steps read them as dims. Sizes count when
// known at load; a value of unknown size is not assumed small.
bool small_host_integers(const onnx::StepQuery& q) {
  bool any = false;
  for (size_t i = 0; i < q.node.num_inputs(); ++i) {
    if (!q.node.has_input(i)) continue;
    const onnx::ValueInfo& v = q.node.input(i);
    if (v.is_constant()) continue;
    if (!q.input_on_host[i] || dtype_is_float(v.dtype) || !v.shape) return false;
    int64_t n = 1;
    for (int64_t d : *v.shape) {
      if (d < 0) return false;
      n *= d;
    }
    if (n > 4096) return false;
    any = true;
  }
  return any || q.node.num_inputs() == 0;
}

class DeviceLibrary final : public onnx::DeviceKernels {
 public:
  DeviceLibrary() {
    add_elementwise_ops(table_);
    add_data_ops(table_);
    add_nn_ops(table_);
  }

  // The placement rules of this executor, applied once per step at load.
  onnx::KernelChoice choose(const onnx::StepQuery& q) const override {
    onnx::KernelChoice c;
    const std::string& domain = q.node.domain();
    const bool std_domain = domain.empty() || domain == "ai.onnx";
    if (q.has_subgraphs) {
      c.why = "control flow: its bodies run on the CPU executor";
      return c;
    }
    if (std_domain && q.reads_dims_only && q.node.has_input(0)) {
      c.placement = onnx::Placement::CpuDims;
      c.why = "reads only its input's dims";
      return c;
    }
    if (std_domain && small_host_integers(q)) {
      c.why = "small integer values already on the host";
      return c;
    }
    const DeviceOpBuilder build = table_.find(domain, q.node.op_type());
    if (!build) {
      c.why = "no device kernel";
      return c;
    }
    DeviceBuild b(q);
    auto kernel = build(b);
    if (!kernel) {
      c.why = b.why();
      return c;
    }
    c.placement = onnx::Placement::Device;
    c.kernel = std::move(kernel);
    c.host_reads = b.host_reads();
    return c;
  }

 private:
  DeviceOpTable table_;
};

}  // namespace

const onnx::DeviceKernels& device_kernels() {
  static const DeviceLibrary lib;  // read-only after construction: the code's kernels, not state
  return lib;
}

std::optional<DT> device_dtype(DType t) {
  switch (t) {
    case DType::F32: return DT::F32;
    case DType::I64: return DT::I64;
    case DType::I32: return DT::I32;
    case DType::Bool:
    case DType::U8: return DT::U8;
    default: return std::nullopt;
  }
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

std::vector<int64_t> broadcast_dims(const OpCtx& c, const std::vector<std::vector<int64_t>>& shapes) {
  size_t r = 0;
  for (const auto& s : shapes) r = std::max(r, s.size());
  std::vector<int64_t> out(r, 1);
  for (const auto& s : shapes)
    for (size_t k = 0; k < s.size(); ++k) {
      int64_t& o = out[r - s.size() + k];
      const int64_t d = s[k];
      if (d == o || d == 1) continue;
      if (o == 1) { o = d; continue; }
      std::string list;
      for (const auto& t : shapes) list += (list.empty() ? "" : " and ") + dims_to_string(t);
      c.fail("shapes " + list + " cannot be broadcast");
    }
  return out;
}

int64_t Space::numel() const { return quiver::numel(dims); }

void launch(const Space& s, const std::function<void(const Layout&, int64_t, int64_t)>& fn) {
  const size_t r = s.dims.size();
  const size_t lead = r > static_cast<size_t>(kMaxRank) ? r - kMaxRank : 0;
  Layout l;
  l.rank = static_cast<int>(r - lead);
  int64_t inner = 1, outer = 1;
  for (size_t k = lead; k < r; ++k) {
    l.dims[k - lead] = s.dims[k];
    for (int o = 0; o < 3; ++o) l.stride[o][k - lead] = s.stride[o].empty() ? 0 : s.stride[o][k];
    l.mod[k - lead] = s.mod.empty() ? 0 : s.mod[k];
    inner *= s.dims[k];
  }
  for (size_t k = 0; k < lead; ++k) outer *= s.dims[k];
  for (int64_t j = 0; j < outer; ++j) {
    int64_t rem = j;
    for (int o = 0; o < 3; ++o) l.offset[o] = s.offset[o];
    for (size_t k = lead; k-- > 0;) {
      const int64_t idx = rem % s.dims[k];
      rem /= s.dims[k];
      for (int o = 0; o < 3; ++o) {
        if (s.stride[o].empty()) continue;
        const bool wraps = o == 1 && !s.mod.empty() && s.mod[k] != 0;  // the source index wraps (Tile)
        l.offset[o] += (wraps ? idx % s.mod[k] : idx) * s.stride[o][k];
      }
    }
    fn(l, inner, j * inner);
  }
}

Space broadcast_space(const OpCtx& c, const std::vector<int64_t>& out, const std::vector<std::vector<int64_t>>& ops) {
  // Merge adjacent dims where every operand is contiguous-or-broadcast in the same way: fewer
  // divisions per element, and the common "same shape" case becomes one dim.
  const size_t r = out.size();
  std::vector<std::vector<int64_t>> st(ops.size(), std::vector<int64_t>(r, 0));
  for (size_t o = 0; o < ops.size(); ++o) {
    const auto& d = ops[o];
    if (d.size() > r) c.fail("operand of shape " + dims_to_string(d) + " does not broadcast to " + dims_to_string(out));
    const auto cs = contiguous_strides(d);
    for (size_t k = 0; k < d.size(); ++k) st[o][r - d.size() + k] = d[k] == 1 ? 0 : cs[k];
  }
  Space s;
  for (size_t k = 0; k < r; ++k) {
    if (out[k] == 1) continue;
    bool merge = !s.dims.empty();
    for (size_t o = 0; merge && o < ops.size(); ++o) merge = s.stride[o].back() == st[o][k] * out[k];
    if (merge) {
      s.dims.back() *= out[k];
      for (size_t o = 0; o < ops.size(); ++o) s.stride[o].back() = st[o][k];
    } else {
      s.dims.push_back(out[k]);
      for (size_t o = 0; o < ops.size(); ++o) s.stride[o].push_back(st[o][k]);
    }
  }
  return s;
}

int64_t norm_axis(const OpCtx& c, int64_t axis, int64_t rank) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= std::max<int64_t>(rank, 1))
    c.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return a;
}

std::string DeviceSpec::text() const {
  switch (kind) {
    case Cpu: return "cpu";
    case Cuda: return "cuda:" + std::to_string(index);
    case Emulator: return "gpu-emulator";
  }
  return "cpu";
}

DeviceSpec parse_device(const std::string& s) {
  DeviceSpec d;
  if (s.empty() || s == "cpu") return d;
  if (s == "gpu-emulator") { d.kind = DeviceSpec::Emulator; return d; }
  if (s == "auto") {
    if (cuda_device_count() > 0) d.kind = DeviceSpec::Cuda;
    return d;
  }
  if (s == "cuda") { d.kind = DeviceSpec::Cuda; return d; }
  if (s.rfind("cuda:", 0) == 0) {
    const std::string n = s.substr(5);
    if (!n.empty() && n.size() < 4 && n.find_first_not_of("0123456789") == std::string::npos) {
      d.kind = DeviceSpec::Cuda;
      d.index = std::stoi(n);
      return d;
    }
  }
  throw_error(ErrorCode::InvalidArgument, "unknown device '" + s + "': expected cpu, cuda, cuda:N, auto or gpu-emulator");
}

// ---------------------------------------------------------------- the model and its per-call state
namespace {

std::unique_ptr<Stream> open_stream(const DeviceSpec& d) {
  return d.kind == DeviceSpec::Emulator ? make_emulated_stream() : make_cuda_stream(d.index);
}

void grow(Stream& s, Val& v, size_t bytes) {
  if (v.own && v.own_cap >= bytes) return;
  if (v.own) s.release(v.own);
  v.own = nullptr;
  v.own_cap = 0;
  const size_t cap = std::max<size_t>(256, (bytes + bytes / 4 + 255) / 256 * 256);  // room to grow a little
  v.own = s.alloc(cap);
  v.own_cap = cap;
}

// A stream with the device buffers of one run in flight. The model keeps a small pool of them (not
// one per RunState): GPU memory is bounded by the number of concurrent runs, not of callers.
class DeviceContext {
 public:
  std::unique_ptr<Stream> s;
  std::vector<Val> slots, inputs;
  std::map<std::pair<size_t, size_t>, Val> dummies;  // outputs nobody reads: (step, output)
  std::unique_ptr<onnx::PlanState> cpu;             // subgraph states and scratch of CPU kernels
  int32_t* err = nullptr;
  bool err_unread = false;  // a run failed after queuing kernels: the flag may hold its error
  Val scratch;
  ~DeviceContext() {
    if (!s) return;
    auto drop = [&](Val& v) { if (v.own) s->release(v.own); v.own = nullptr; };
    for (auto& v : slots) drop(v);
    for (auto& v : inputs) drop(v);
    for (auto& [k, v] : dummies) drop(v);
    drop(scratch);
    if (err) s->release(err);
  }
};

class GpuState final : public RunState {};  // the device side lives in the model's context pool

class DeviceModel final : public Model {
 public:
  DeviceModel(std::shared_ptr<const onnx::OnnxModel> base, DeviceSpec dev)
      : base_(std::move(base)), info_(base_->info()), plan_(base_->plan()), dev_(dev), const_stream_(open_stream(dev)) {
    info_.device = dev.text();
    // Constants (weights) go to the device once, at load; the model stays immutable afterwards.
    consts_.resize(plan_.constants.size());
    for (size_t i = 0; i < consts_.size(); ++i) {
      const Tensor& t = *plan_.constants[i];
      Val& v = consts_[i];
      v.dtype = t.dtype();
      v.dims = t.dims();
      v.host = t;
      v.on_host = true;
      if (t.dtype() == DType::String) continue;
      if (t.nbytes() > 0) {
        grow(*const_stream_, v, t.nbytes());
        const_stream_->upload(v.own, t.raw(), t.nbytes());
        v.dev = v.own;
      }
      v.on_dev = true;
    }
    const_stream_->sync();
  }
  ~DeviceModel() override {
    for (auto& v : consts_)
      if (v.own) const_stream_->release(v.own);
  }

  const ModelInfo& info() const override { return info_; }

  std::unique_ptr<RunState> make_state() const override { return std::make_unique<GpuState>(); }

  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const override;

  void describe(std::ostream& os) const override {
    base_->describe(os);  // includes where each step was placed at load
    os << "device: " << const_stream_->device_name() << "\n";
  }

  const onnx::Plan& plan() const { return plan_; }
  const Val& constant(size_t i) const { return consts_[i]; }

 private:
  std::unique_ptr<DeviceContext> make_context() const {
    auto c = std::make_unique<DeviceContext>();
    c->s = open_stream(dev_);
    c->slots.resize(plan_.num_slots);
    c->inputs.resize(info_.inputs.size());
    c->cpu = plan_.make_state();
    c->err = static_cast<int32_t*>(c->s->alloc(sizeof(int32_t)));
    c->s->fill(c->err, sizeof(int32_t), 0, 1);
    return c;
  }
  // A free context, a new one while fewer than dev_.streams exist, else wait for one.
  std::unique_ptr<DeviceContext> acquire() const {
    std::unique_lock lock(pool_mu_);
    pool_cv_.wait(lock, [&] { return !pool_.empty() || live_ < dev_.streams; });
    if (!pool_.empty()) {
      auto c = std::move(pool_.back());
      pool_.pop_back();
      return c;
    }
    ++live_;
    lock.unlock();
    try {
      return make_context();
    } catch (...) {
      std::lock_guard relock(pool_mu_);
      --live_;
      pool_cv_.notify_one();
      throw;
    }
  }
  void give_back(std::unique_ptr<DeviceContext> c) const {
    {
      std::lock_guard lock(pool_mu_);
      pool_.push_back(std::move(c));
    }
    pool_cv_.notify_one();
  }

  std::shared_ptr<const onnx::OnnxModel> base_;
  ModelInfo info_;
  const onnx::Plan& plan_;
  DeviceSpec dev_;
  std::unique_ptr<Stream> const_stream_;  // owns the constants' device memory
  std::vector<Val> consts_;
  mutable std::mutex pool_mu_;
  mutable std::condition_variable pool_cv_;
  mutable std::vector<std::unique_ptr<DeviceContext>> pool_;
  mutable int live_ = 0;
};

// Moves data where a step needs it and runs the step one way or the other.
class Runner {
 public:
  Runner(const DeviceModel& m, DeviceContext& st) : m_(m), st_(st), s_(*st.s) {}

  Val& val(onnx::ValueRef r) {
    switch (r.kind) {
      case onnx::ValueRef::Input: return st_.inputs[r.index];
      case onnx::ValueRef::Const: return const_cast<Val&>(m_.constant(r.index));  // both copies valid: never written
      case onnx::ValueRef::Slot: return st_.slots[r.index];
      default: throw_error(ErrorCode::Internal, "absent value requested");
    }
  }
  Val& out_val(const onnx::Step& step, size_t si, size_t i) {
    if (i < step.outputs.size() && step.outputs[i] >= 0) return st_.slots[step.outputs[i]];
    return st_.dummies[{si, i}];
  }
  void* ensure_dev(Val& v) {
    if (v.on_dev) return v.dev;
    if (!v.on_host) throw_error(ErrorCode::Internal, "value has no data on either side");
    if (v.dtype == DType::String)  // no device kernel takes strings: their builders declined at load
      throw_error(ErrorCode::Internal, "a string tensor was asked for on the device");
    const size_t bytes = v.nbytes();
    grow(s_, v, bytes);
    s_.upload(v.own, v.host.raw(), bytes);
    v.dev = v.own;
    v.on_dev = true;
    return v.dev;
  }
  const Tensor& ensure_host(Val& v) {
    if (v.on_host) return v.host;
    if (!v.on_dev) throw_error(ErrorCode::Internal, "value has no data on either side");
    v.host.ensure(v.dtype, v.dims);
    s_.download(v.host.raw(), v.dev, v.nbytes());
    v.on_host = true;
    return v.host;
  }
  void* device_out(Val& o, DType dtype, const std::vector<int64_t>& dims) {
    o.dtype = dtype;
    o.dims = dims;
    grow(s_, o, o.nbytes());
    o.dev = o.own;
    o.on_dev = true;
    o.on_host = false;
    return o.dev;
  }

  void run_step(size_t si, const onnx::Step& step);
  void run_cpu(size_t si, const onnx::Step& step, bool dims_only);

  const DeviceModel& m_;
  DeviceContext& st_;
  Stream& s_;
};

// The CPU kernel's view of a step: host tensors in, host tensors (or views) out.
class CpuCtx final : public onnx::ExecContext {
 public:
  CpuCtx(Runner& r, const onnx::Step& step, size_t si, bool dims_only) : r_(r), step_(step), si_(si), dims_only_(dims_only) {}
  size_t num_inputs() const override { return step_.inputs.size(); }
  const Tensor* input_ptr(size_t i) const override {
    if (i >= step_.inputs.size() || step_.inputs[i].kind == onnx::ValueRef::Absent) return nullptr;
    if (step_.inputs[i].kind == onnx::ValueRef::Const) return r_.m_.plan().constants[step_.inputs[i].index].get();
    Val& v = r_.val(step_.inputs[i]);
    if (dims_only_ && i == 0 && !v.on_host) {
      // The kernel reads only the dims; the data stays on the device.
      dims_view_ = Tensor::view(v.dtype, v.dims, v.dev);
      return &dims_view_;
    }
    return &r_.ensure_host(v);
  }
  size_t num_outputs() const override { return step_.outputs.size(); }
  bool wants_output(size_t i) const override { return i < step_.outputs.size() && step_.outputs[i] >= 0; }
  Tensor& output(size_t i, DType dtype, std::span<const int64_t> dims) override {
    Val& o = r_.out_val(step_, si_, i);
    o.host.ensure(dtype, dims);
    o.dtype = dtype;
    o.dims.assign(dims.begin(), dims.end());
    o.on_host = true;
    o.on_dev = false;
    return o.host;
  }
  void alias_output(size_t i, size_t in, std::span<const int64_t> dims) override {
    if (in >= step_.inputs.size() || step_.inputs[in].kind == onnx::ValueRef::Absent) fail("aliased input is missing");
    Val& src = r_.val(step_.inputs[in]);
    if (numel(dims) != src.numel())
      fail("cannot view " + dims_to_string(src.dims) + " as " + dims_to_string(dims));
    if (!wants_output(i)) return;
    Val& o = r_.out_val(step_, si_, i);
    const std::vector<int64_t> d(dims.begin(), dims.end());
    if (!step_.view_out[i]) {  // not planned as a view: copy, on whichever side holds the data
      if (src.on_dev) {
        void* p = r_.device_out(o, src.dtype, d);
        r_.s_.copy(p, src.dev, src.nbytes());
      } else {
        Tensor& t = output(i, src.dtype, dims);
        t.copy_from(src.host.reshaped(dims));
        t.set_dims(dims);
      }
      return;
    }
    o.dtype = src.dtype;
    o.dims = d;
    o.on_host = src.on_host;
    if (src.on_host) o.host = Tensor::view(src.dtype, dims, src.host.raw());
    o.on_dev = src.on_dev;
    o.dev = src.dev;
  }
  void* scratch(size_t bytes) override {
    auto& sc = r_.st_.cpu->scratch;
    if (sc.capacity_bytes() < bytes || !sc.defined()) sc = Tensor::empty(DType::U8, {static_cast<int64_t>(bytes)});
    return sc.raw();
  }
  onnx::PlanState& subgraph_state(size_t k) override { return *r_.st_.cpu->subs[step_.first_sub + k]; }
  const std::string& node_name() const override { return step_.label; }
  [[noreturn]] void fail(const std::string& message, const std::string& tensor = "",
                         ErrorCode code = ErrorCode::InvalidArgument) const override {
    throw Error(code, message, {r_.m_.plan().model_name, step_.label, tensor});
  }

 private:
  Runner& r_;
  const onnx::Step& step_;
  size_t si_;
  bool dims_only_;
  mutable Tensor dims_view_;
};

class DeviceCtx final : public OpCtx {
 public:
  DeviceCtx(Runner& r, const onnx::Step& step, size_t si)
      : OpCtx(r.s_, step, r.st_.err, static_cast<int32_t>(si + 1)), r_(r), si_(si) {}
  size_t num_inputs() const override { return step.inputs.size(); }
  bool has(size_t i) const override { return i < step.inputs.size() && step.inputs[i].kind != onnx::ValueRef::Absent; }
  const Val& in(size_t i) const override {
    if (!has(i)) fail("required input " + std::to_string(i) + " is missing");
    return r_.val(step.inputs[i]);
  }
  const void* dev(size_t i) override { in(i); return r_.ensure_dev(r_.val(step.inputs[i])); }
  const Tensor& host(size_t i) override { in(i); return r_.ensure_host(r_.val(step.inputs[i])); }
  size_t num_outputs() const override { return step.outputs.size(); }
  bool wants(size_t i) const override { return i < step.outputs.size() && step.outputs[i] >= 0; }
  void* out(size_t i, DType dtype, const std::vector<int64_t>& dims) override {
    return r_.device_out(r_.out_val(step, si_, i), dtype, dims);
  }
  void* scratch(size_t bytes) override {
    grow(r_.s_, r_.st_.scratch, bytes);
    return r_.st_.scratch.own;
  }

 private:
  Runner& r_;
  size_t si_;
};

void Runner::run_cpu(size_t si, const onnx::Step& step, bool dims_only) {
  CpuCtx ctx(*this, step, si, dims_only);
  step.kernel->run(ctx);
  // A kernel may reshape its output after allocating it: take the final dims from the tensor.
  for (size_t i = 0; i < step.outputs.size(); ++i) {
    Val& o = out_val(step, si, i);
    if (o.on_host && !o.on_dev) {
      o.dims = o.host.dims();
      o.dtype = o.host.dtype();
    }
  }
}

// Runs the step where the compiler placed it.
void Runner::run_step(size_t si, const onnx::Step& step) {
  switch (step.placement) {
    case onnx::Placement::Device: {
      DeviceCtx ctx(*this, step, si);
      static_cast<const DeviceOp&>(*step.device_kernel).run(ctx);  // device_kernels() built it
      return;
    }
    case onnx::Placement::CpuDims: run_cpu(si, step, true); return;
    case onnx::Placement::Cpu: run_cpu(si, step, false); return;
  }
}

void DeviceModel::run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const {
  base_->check_inputs(inputs);
  struct Lease {
    const DeviceModel& m;
    std::unique_ptr<DeviceContext> c;
    ~Lease() { m.give_back(std::move(c)); }
  } lease{*this, acquire()};
  DeviceContext& st = *lease.c;
  Stream& s = *st.s;
  s.activate();
  for (size_t i = 0; i < inputs.size(); ++i) {
    Val& v = st.inputs[i];
    const Tensor& t = inputs[i];
    v.dtype = t.dtype();
    v.dims = t.dims();
    v.host = Tensor::view(t.dtype(), t.dims(), t.raw());
    v.on_host = true;
    v.on_dev = false;
  }
  if (st.err_unread) s.fill(st.err, sizeof(int32_t), 0, 1);
  st.err_unread = true;
  Runner r(*this, st);
  // Profiling (quiver bench --profile, RunState::profile): wait after every step so that its time is
  // its own; a step placed on the host (its CPU kernel, or dims only) is listed as "Op (host)".
  OpProfile* const profile = state.profile;
  if (st.cpu->profile != profile) st.cpu->set_profile(profile);  // control-flow bodies
  if (profile) s.sync();
  for (size_t si = 0; si < plan_.steps.size(); ++si) {
    const onnx::Step& step = plan_.steps[si];
    const int64_t t0 = profile ? now_ns() : 0;
    try {
      r.run_step(si, step);
      if (profile) {
        s.sync();
        profile->add(step.placement == onnx::Placement::Device ? step.op_type : step.op_type + " (host)", now_ns() - t0);
      }
    } catch (const Error& e) {
      throw e.with_context({plan_.model_name, step.label});
    } catch (const std::exception& e) {
      throw Error(ErrorCode::Internal, e.what(), {plan_.model_name, step.label});
    }
  }
  outputs.resize(plan_.outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    Val& v = r.val(plan_.outputs[i]);
    outputs[i].ensure(v.dtype, v.dims);
    if (v.on_host) outputs[i].copy_from(v.host.reshaped(v.dims));
    else s.download(outputs[i].raw(), v.dev, v.nbytes());
  }
  int32_t e = 0;
  s.download(&e, st.err, sizeof e);  // also waits for everything queued
  st.err_unread = false;
  for (auto& v : st.inputs) v.host = Tensor();  // drop the views of the caller's tensors
  if (e != 0) {
    s.fill(st.err, sizeof(int32_t), 0, 1);
    const auto& label = e > 0 && static_cast<size_t>(e) <= plan_.steps.size() ? plan_.steps[e - 1].label : "";
    throw Error(ErrorCode::InvalidArgument, "index out of range for the indexed axis", {plan_.model_name, label});
  }
}

}  // namespace

std::shared_ptr<const Model> make_device_model(std::shared_ptr<const onnx::OnnxModel> base, const DeviceSpec& dev) {
  return std::make_shared<DeviceModel>(std::move(base), dev);
}

namespace {
onnx::Target device_target(const DeviceSpec& dev) {
  onnx::Target t;
  t.name = dev.text();
  t.device = &device_kernels();
  return t;
}
}  // namespace

std::shared_ptr<const Model> load_onnx(const std::string& path, const LoadOptions& options, const DeviceSpec& dev) {
  onnx::expect_default_numerics(options, dev.text());
  auto base = onnx::compile_onnx_file(path, options, {}, device_target(dev));
  const std::string name = base->info().name;
  try {
    return make_device_model(std::move(base), dev);
  } catch (const Error& e) {
    throw e.with_context({name, "", "", path});
  }
}

std::shared_ptr<const Model> load_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                             const LoadOptions& options, const DeviceSpec& dev) {
  onnx::expect_default_numerics(options, dev.text());
  return make_device_model(onnx::compile_onnx_bytes(bytes, base_dir, options, {}, device_target(dev)), dev);
}

}  // namespace quiver::gpu
