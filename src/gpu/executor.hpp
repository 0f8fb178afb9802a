// Internal: the GPU executor. It runs the CPU engine's compiled Plan (same steps, same slot reuse)
// with device kernels. Every value may live on the host, on the device or both; a step runs
//  - on the device when it has a device kernel (ops_*.cpp) for its dtypes and attributes,
//  - on the host with its CPU kernel otherwise, and for small integer "shape arithmetic" (Shape,
//    Gather on shapes, Concat of dims ...) whose results steer later kernels,
//  - dims-only (Shape, Size, Reshape, Squeeze, Unsqueeze, Flatten, Identity): the CPU kernel sees
//    only the dims and the device buffer is viewed, not moved.
// Data moves only where a consumer needs it elsewhere. Device kernels are queued on the call's
// stream; the call waits once, for the outputs. Indices out of range are flagged on the device
// and reported with the node's name after that wait.
#pragma once
#include <memory>
#include <string>
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

// Thrown by a device op before it queues anything: this step runs on the CPU instead.
struct NotOnDevice {
  const char* why;
};

class OpCtx {
 public:
  virtual ~OpCtx() = default;
  Stream& s;
  const onnx::Step& step;
  const onnx::Attributes attrs;
  int32_t* err;       // device error flag
  int32_t err_code;   // this step's code for it
  OpCtx(Stream& stream, const onnx::Step& st, int32_t* e, int32_t code)
      : s(stream), step(st), attrs(st.node.get()), err(e), err_code(code) {}

  int opset() const { return step.opset; }
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
  [[noreturn]] void cpu(const char* why) const { throw NotOnDevice{why}; }
  [[noreturn]] void fail(const std::string& message, const std::string& tensor = "") const;
};

using DeviceOp = void (*)(OpCtx&);
// Device implementation of an op type (ai.onnx domain), or nullptr.
DeviceOp find_device_op(const std::string& op_type);
void register_device_op(const std::string& op_type, DeviceOp op);
// Each ops_*.cpp defines one of these; executor.cpp calls them once.
void register_elementwise_ops();
void register_data_ops();
void register_nn_ops();

// Helpers shared by the op files.
DT device_dtype(DType t);                  // throws NotOnDevice for other dtypes
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& dims);
std::vector<int64_t> broadcast_dims(const OpCtx& c, const std::vector<std::vector<int64_t>>& shapes);
// Layout over `out` for operands of the given dims (right-aligned numpy broadcasting).
Layout broadcast_layout(const OpCtx& c, const std::vector<int64_t>& out, const std::vector<std::vector<int64_t>>& operands);
int64_t norm_axis(const OpCtx& c, int64_t axis, int64_t rank);

// The GPU model over a model compiled for the device target.
std::shared_ptr<const Model> make_device_model(std::shared_ptr<const onnx::OnnxModel> base, const DeviceSpec& dev);

}  // namespace quiver::gpu
