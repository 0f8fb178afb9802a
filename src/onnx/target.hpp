// Internal: what a plan is compiled for, and how the compiler chooses each step's kernel for it.
//
// The compiler builds every node with its op's CPU builder (src/onnx/ops/: attributes, type and shape
// rule, CPU kernel), then asks the target once where the step runs and with which kernel
// (select_kernel in compiler.cpp, the one home of that choice). The answer is data in the plan: a
// step holds the kernel it will run, its placement and, when an accelerator target leaves it on the
// CPU, why. Nothing is tried at run time. ONNX Runtime's kernel registry does the same keyed by
// (op, domain, execution provider) at session creation; here the key is (domain, op, target):
//   - CPU target: the op's OpDef in OpRegistry (every op has one).
//   - a device target: the device library's table (src/gpu/ops_*.cpp), keyed by (domain, op), whose
//     builders read the step's attributes, dtypes and static shapes once and either return a device
//     kernel holding what they read, or decline with a reason; the step then runs its CPU kernel.
// docs/contributing.md ("Kernels and targets") says where the variants of later work go.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/repro/repro.hpp"

namespace quiver::onnx {

class BuildContext;
struct ValueInfo;

// Where a step runs.
enum class Placement : uint8_t {
  Cpu,      // the op's CPU kernel (Kernel::run) on host tensors
  CpuDims,  // the CPU kernel of an op that reads only its first input's dims (Shape, Size and views
            // such as Reshape): on a device target that input's data stays where it is
  Device,   // a device kernel, run by the device target's executor
};
const char* placement_name(Placement p);

// Base of the kernels a device executor runs (src/gpu derives its device ops from it). The compiler
// holds them in the plan; only the executor that supplied them runs them.
class DeviceKernel {
 public:
  virtual ~DeviceKernel() = default;
};

// What a device kernel library sees of a step when choosing, at compile time.
struct StepQuery {
  const BuildContext& node;              // op, domain, opset, attributes; inputs' dtypes, static shapes, constants
  std::span<const ValueInfo> outputs;    // as the op's CPU builder declared them
  std::span<const uint8_t> wanted;       // per output: does anything read it
  std::span<const uint8_t> input_on_host;  // per input: its data is on the host when the step starts
  bool reads_dims_only = false;          // the CPU kernel reads only input 0's dims (OpDef)
  bool has_subgraphs = false;            // If / Loop / Scan: bodies run on the CPU executor
};

struct KernelChoice {
  Placement placement = Placement::Cpu;
  std::unique_ptr<const DeviceKernel> kernel;  // Placement::Device
  std::string why;                             // not on the device: why (printed by inspect)
  std::vector<uint8_t> host_reads;             // Placement::Device: inputs the kernel reads on the host
};

// A library of device kernels keyed by (domain, op type), asked once per step of a device target's
// plan. Built once per process and read-only afterwards.
class DeviceKernels {
 public:
  virtual ~DeviceKernels() = default;
  virtual KernelChoice choose(const StepQuery& step) const = 0;
};

// How CPU kernels compute (onnx/numerics.hpp).
enum class Numerics : uint8_t {
  Default,       // the fastest kernels for this CPU (results may differ in the last bits by ISA/batch)
  Reproducible,  // bitwise identical results for any ISA, batch size, row position and thread count
};
// The instruction set of the reproducible kernels (x86-64 levels, core/repro/repro.hpp).
using Isa = repro::Isa;

// What a plan is compiled for.
struct Target {
  std::string name = "cpu";                // "cpu", "cuda:0", "gpu-emulator": printed by inspect
  const DeviceKernels* device = nullptr;   // asked first for each step; null: every step on the CPU
  // Kernel variants, read once by select_kernel and by builders through BuildContext::target() (see
  // docs/contributing.md): reproducible numerics and its ISA (#15); later the device precision (#24).
  // The code emitter (#17) walks a plan compiled for a CPU target.
  Numerics numerics = Numerics::Default;
  Isa isa = Isa::Baseline;  // Numerics::Reproducible: the ISA of its kernels (resolved at load)
  bool cpu_only() const { return device == nullptr; }
  bool reproducible() const { return numerics == Numerics::Reproducible; }
};

}  // namespace quiver::onnx
