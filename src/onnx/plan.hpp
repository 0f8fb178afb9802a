// Internal: the compiled, immutable execution plan of a graph and its per-call state.
#pragma once
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "onnx/kernel.hpp"
#include "quiver/core/profile.hpp"

namespace quiver::onnx {

struct ValueRef {
  enum Kind : uint8_t { Absent, Input, Const, Slot };
  Kind kind = Absent;
  uint32_t index = 0;
};

struct Step {
  Placement placement = Placement::Cpu;  // chosen once by the compiler for the plan's target
  std::unique_ptr<Kernel> kernel;        // Placement::Cpu / CpuDims: the op's CPU kernel
  std::unique_ptr<const DeviceKernel> device_kernel;  // Placement::Device (null otherwise)
  std::string why_cpu;  // a device target's step on the CPU: why (no device kernel, its dtypes ...)
  std::vector<ValueRef> inputs;
  std::vector<int32_t> outputs;   // slot per output, -1 = not wanted
  std::vector<uint8_t> view_out;  // output slot holds views (aliasing op)
  std::string label;              // "name (OpType)" for errors
  std::string op_type;            // for profiles
  uint32_t first_sub = 0, num_subs = 0;  // range in Plan::subplans_
};

class PlanState {
 public:
  std::vector<Tensor> slots;
  std::vector<std::unique_ptr<PlanState>> subs;
  const Tensor* const* inputs = nullptr;
  size_t num_inputs = 0;
  Tensor scratch;  // grows, reused
  OpProfile* profile = nullptr;  // per-step times by op type (RunState::profile); subgraph states too
  // Owned bytes of the slots and scratch, subgraph states included (views count nothing).
  size_t arena_bytes() const {
    size_t n = scratch.is_view() ? 0 : scratch.capacity_bytes();
    for (const auto& t : slots) n += t.is_view() ? 0 : t.capacity_bytes();
    for (const auto& s : subs) n += s->arena_bytes();
    return n;
  }
  void set_profile(OpProfile* p) {
    profile = p;
    for (auto& s : subs) s->set_profile(p);
  }
};

class Plan {
 public:
  std::string model_name;
  std::string target = "cpu";  // Target::name it was compiled for
  bool cpu_only = true;        // every step has its CPU kernel: run() may run it
  std::vector<std::shared_ptr<const Tensor>> constants;
  std::vector<Step> steps;
  size_t num_slots = 0;
  size_t num_inputs = 0;
  std::vector<ValueRef> outputs;
  std::vector<std::optional<std::vector<int64_t>>> output_shapes;  // as the compiler inferred them (-1: dynamic)
  std::vector<std::shared_ptr<const Plan>> subplans;

  std::unique_ptr<PlanState> make_state() const;
  // Runs with `inputs` (formal inputs then outer-scope values for subgraphs). Results stay in the state.
  // A plan with device steps runs on its device executor (src/gpu), not here.
  void run(std::span<const Tensor* const> inputs, PlanState& st) const;
  const Tensor& result(size_t i, const PlanState& st) const { return resolve(outputs[i], st); }

  const Tensor& resolve(ValueRef r, const PlanState& st) const {
    switch (r.kind) {
      case ValueRef::Input: return *st.inputs[r.index];
      case ValueRef::Const: return *constants[r.index];
      default: return st.slots[r.index];
    }
  }
};

}  // namespace quiver::onnx
