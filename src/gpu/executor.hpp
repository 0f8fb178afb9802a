// Internal: the GPU executor. It runs a Plan the ONNX compiler built for a device target (the same
// steps and slot reuse as the CPU engine's), where each step was placed once, at load
// (onnx/target.hpp, this library's device_kernels()):
//  - Device: its device kernel (ops_*.cpp), configured by its builder from the step's attributes,
//    dtypes and static shapes;
//  - Cpu: its CPU kernel on host tensors: no device kernel for its op, dtypes or attributes, or small
//    integer "shape arithmetic" whose inputs are already on the host and whose results steer later steps;
//  - CpuDims (Shape, Size, views such as Reshape): the CPU kernel sees only the dims and the device
//    buffer is viewed, not moved.
// Data moves only where a consumer needs it elsewhere. Device kernels are queued on the call's
// stream; the call waits once, for the outputs. Indices out of range are flagged on the device
// and reported with the node's name after that wait.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gpu/device.hpp"
#include "gpu/stream.hpp"
#include "onnx/kernel.hpp"
#include "onnx/plan.hpp"
#include "quiver/core/model.hpp"

namespace quiver::onnx { class OnnxModel; }

namespace quiver::gpu {

// One value of the plan as the executor sees it.
struct Val {
  DType dtype = DType::Undefined;
  std::vector<int64_t> dims;
  Tensor host;            // valid when on_host (owned, or a view)
  bool on_host = false;
  void* dev = nullptr;    // valid when on_dev: `own` or another value's memory (views)
  bool on_dev = false;
  void* own = nullptr;    // device memory this slot owns, reused across calls
  size_t own_cap = 0;
  int64_t numel() const;
  size_t nbytes() const;
};

// A device kernel's per-call view of its step.
class OpCtx {
 public:
  virtual ~OpCtx() = default;
  Stream& s;
  const onnx::Step& step;
  int32_t* err;       // device error flag
  int32_t err_code;   // this step's code for it
  OpCtx(Stream& stream, const onnx::Step& st, int32_t* e, int32_t code) : s(stream), step(st), err(e), err_code(code) {}

  virtual size_t num_inputs() const = 0;
  virtual bool has(size_t i) const = 0;
  virtual const Val& in(size_t i) const = 0;  // dtype and dims; no data moves
  virtual const void* dev(size_t i) = 0;      // the input on the device (uploaded if needed)
  virtual const Tensor& host(size_t i) = 0;   // the input on the host (downloaded if needed)
  std::vector<int64_t> ints(size_t i);        // integer input as a list (host)
  virtual size_t num_outputs() const = 0;
  virtual bool wants(size_t i) const = 0;
  virtual void* out(size_t i, DType dtype, const std::vector<int64_t>& dims) = 0;
  // Device scratch for this step (valid until the next step's scratch request is queued).
  virtual void* scratch(size_t bytes) = 0;
  [[noreturn]] void fail(const std::string& message, const std::string& tensor = "") const;
};

// A device kernel: what its builder read at load (attributes, dtypes, constant arguments), run per
// call. Immutable; it never declines at run time (its builder decided).
class DeviceOp : public onnx::DeviceKernel {
 public:
  virtual void run(OpCtx& c) const = 0;
};
template <class F>
class LambdaOp final : public DeviceOp {
 public:
  explicit LambdaOp(F f) : f_(std::move(f)) {}
  void run(OpCtx& c) const override { f_(c); }
 private:
  F f_;
};
template <class F>
std::unique_ptr<const DeviceOp> device_op(F f) { return std::make_unique<LambdaOp<F>>(std::move(f)); }

// What a device kernel's builder sees of a step at load (onnx::StepQuery) and how it answers: a
// DeviceOp, or decline(why) and the step runs its CPU kernel.
class DeviceBuild {
 public:
  explicit DeviceBuild(const onnx::StepQuery& q) : q_(q) {}
  const onnx::BuildContext& node() const { return q_.node; }
  const onnx::Attributes& attrs() const { return q_.node.attrs(); }
  int opset() const { return q_.node.opset(); }
  size_t num_inputs() const { return q_.node.num_inputs(); }
  bool has(size_t i) const { return q_.node.has_input(i); }
  DType dtype(size_t i) const { return q_.node.input(i).dtype; }
  const std::optional<std::vector<int64_t>>& shape(size_t i) const { return q_.node.input(i).shape; }
  const Tensor* constant(size_t i) const { return has(i) ? q_.node.input(i).constant.get() : nullptr; }
  std::optional<std::vector<int64_t>> const_ints(size_t i) const { return q_.node.const_ints(i); }
  size_t num_outputs() const { return q_.outputs.size(); }
  bool wants(size_t i) const { return i < q_.wanted.size() && q_.wanted[i]; }
  // The kernel reads input i on the host (shape arguments): recorded for the plan's data placement.
  void read_on_host(size_t i);
  // Input i as integers: pre-read when constant, else read on the host per call.
  std::optional<std::vector<int64_t>> ints_or_host(size_t i);
  std::unique_ptr<const DeviceOp> decline(std::string why) {
    why_ = std::move(why);
    return nullptr;
  }
  const std::string& why() const { return why_; }
  const std::vector<uint8_t>& host_reads() const { return host_reads_; }

 private:
  const onnx::StepQuery& q_;
  std::string why_;
  std::vector<uint8_t> host_reads_;
};
using DeviceOpBuilder = std::unique_ptr<const DeviceOp> (*)(DeviceBuild&);

// The device kernels, keyed by (domain, op type); each ops_*.cpp adds its builders.
class DeviceOpTable {
 public:
  void add(const std::string& domain, const std::string& op_type, DeviceOpBuilder b) { ops_[{domain, op_type}] = b; }
  DeviceOpBuilder find(const std::string& domain, const std::string& op_type) const;
 private:
  std::map<std::pair<std::string, std::string>, DeviceOpBuilder> ops_;
};
void add_elementwise_ops(DeviceOpTable& t);
void add_data_ops(DeviceOpTable& t);
void add_nn_ops(DeviceOpTable& t);

// This library as the ONNX compiler's device kernel source: the table plus the placement rules (which
// steps stay on the host whatever kernels exist). Built once per process, read-only afterwards.
const onnx::DeviceKernels& device_kernels();

// Helpers shared by the op files.
std::optional<DT> device_dtype(DType t);   // nullopt: no device kernels for this dtype
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& dims);
std::vector<int64_t> broadcast_dims(const OpCtx& c, const std::vector<std::vector<int64_t>>& shapes);

// An iteration space of any rank over up to three operands: element strides (0 = broadcast), base
// offsets, and `mod` as in Layout (copy_strided's source index wraps). Device kernels take at most
// kMaxRank dims; launch() hands them the space in pieces that fit.
struct Space {
  std::vector<int64_t> dims;
  std::vector<int64_t> stride[3];
  std::vector<int64_t> mod;  // empty, or per dim (0 = no wrap)
  int64_t offset[3] = {};
  int64_t numel() const;
};
// Calls fn(layout, n, first) for consecutive pieces of the space: n elements from linear index
// `first` (row-major over dims), operand offsets included in the layout. One call when the rank
// fits; a space of higher rank (rare) iterates its leading dims here, one call per index.
void launch(const Space& s, const std::function<void(const Layout&, int64_t n, int64_t first)>& fn);
// The space over `out` for operands of the given dims (right-aligned numpy broadcasting), adjacent
// dims merged where every operand allows it (the common "same shape" case becomes one dim).
Space broadcast_space(const OpCtx& c, const std::vector<int64_t>& out, const std::vector<std::vector<int64_t>>& operands);
int64_t norm_axis(const OpCtx& c, int64_t axis, int64_t rank);

// The GPU model over a model compiled for the device target (device_kernels()).
std::shared_ptr<const Model> make_device_model(std::shared_ptr<const onnx::OnnxModel> base, const DeviceSpec& dev);

}  // namespace quiver::gpu
