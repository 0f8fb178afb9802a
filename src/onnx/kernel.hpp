// The contract between the ONNX graph compiler and operators.
//
// An operator is one file in src/onnx/ops/ with a builder that runs once at load time (reads
// attributes, checks input types, declares output types, may precompute/pack weights) and returns an
// immutable Kernel. Kernel::run is const and runs once per call with an ExecContext that hands out
// inputs and allocates outputs from per-call state. Kernels keep no mutable state.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "onnx/target.hpp"
#include "quiver/core/error.hpp"
#include "quiver/core/tensor.hpp"

namespace onnx {
class NodeProto;
class GraphProto;
class AttributeProto;
}  // namespace onnx

namespace quiver::onnx {

class Plan;
class PlanState;

// What the compiler knows about a value before running.
struct ValueInfo {
  DType dtype = DType::Undefined;
  bool present = true;  // false: an omitted optional input ("")
  // Known rank and dims; a dim of -1 is unknown/dynamic. nullopt: rank unknown.
  std::optional<std::vector<int64_t>> shape;
  // Set when the value is known at load time (initializer, Constant, folded).
  std::shared_ptr<const Tensor> constant;
  bool is_constant() const { return constant != nullptr; }
};

// Read-only access to a node's attributes (by name).
class Attributes {
 public:
  explicit Attributes(const ::onnx::NodeProto* node) : node_(node) {}
  bool has(const std::string& name) const;
  int64_t get_int(const std::string& name, int64_t def) const;
  float get_float(const std::string& name, float def) const;
  std::string get_string(const std::string& name, const std::string& def) const;
  std::vector<int64_t> get_ints(const std::string& name, std::vector<int64_t> def = {}) const;
  std::vector<float> get_floats(const std::string& name, std::vector<float> def = {}) const;
  std::vector<std::string> get_strings(const std::string& name, std::vector<std::string> def = {}) const;
  // Tensor-valued attribute (e.g. Constant.value, ConstantOfShape.value); nullopt if absent.
  std::optional<Tensor> get_tensor(const std::string& name) const;
  // Required variants: throw a clear error naming the attribute when missing.
  int64_t req_int(const std::string& name) const;
  std::vector<int64_t> req_ints(const std::string& name) const;
  std::string req_string(const std::string& name) const;
  const ::onnx::AttributeProto* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  const ::onnx::NodeProto* node_;
};

// A compiled subgraph (If branches, Loop/Scan bodies) and how to feed it.
struct Subgraph {
  std::shared_ptr<const Plan> plan;
  // Node input positions (in ExecContext) of the outer-scope values the subgraph reads, in the
  // order the subgraph expects them after its own formal inputs.
  std::vector<size_t> outer_inputs;
  std::vector<std::string> input_names, output_names;
};

class Kernel;

class BuildContext {
 public:
  virtual ~BuildContext() = default;
  virtual const std::string& op_type() const = 0;
  virtual const std::string& domain() const = 0;
  virtual const std::string& node_name() const = 0;
  virtual const std::string& model_name() const = 0;
  // Opset version in force for this node's domain.
  virtual int opset() const = 0;
  // What the plan is compiled for (a builder may pick a variant of its kernel once, here).
  virtual const Target& target() const = 0;
  virtual const Attributes& attrs() const = 0;
  virtual size_t num_inputs() const = 0;  // declared inputs (trailing omitted ones count as absent)
  virtual const ValueInfo& input(size_t i) const = 0;  // i >= num_inputs() -> absent info
  bool has_input(size_t i) const { return i < num_inputs() && input(i).present; }
  virtual const std::string& input_name(size_t i) const = 0;
  virtual size_t num_outputs() const = 0;
  virtual const std::string& output_name(size_t i) const = 0;
  // Declare output i. Every present output must be declared with its dtype.
  virtual void set_output(size_t i, DType dtype, std::optional<std::vector<int64_t>> shape = std::nullopt) = 0;
  // Declare output i as a load-time constant (e.g. Shape of a fully static input); the node may
  // then be dropped if all its outputs are constant.
  virtual void set_output_constant(size_t i, Tensor value) = 0;
  // Compile the graph-valued attribute `attr`; formal inputs get the given infos.
  virtual Subgraph compile_subgraph(const std::string& attr, const std::vector<ValueInfo>& formal_inputs) = 0;

  [[noreturn]] void fail(const std::string& message, const std::string& tensor = "",
                         ErrorCode code = ErrorCode::InvalidArgument) const;
  [[noreturn]] void unsupported(const std::string& message) const { fail(message, "", ErrorCode::Unsupported); }
  // Common checks with good messages.
  void expect_inputs(size_t min, size_t max) const;
  DType input_dtype(size_t i) const { return input(i).dtype; }
  void expect_dtype(size_t i, std::initializer_list<DType> allowed) const;
  // Constant input as int64 list (accepts int32/int64 tensors); nullopt when not constant.
  std::optional<std::vector<int64_t>> const_ints(size_t i) const;
};

// Per-call view given to Kernel::run.
class ExecContext {
 public:
  virtual ~ExecContext() = default;
  virtual size_t num_inputs() const = 0;
  // nullptr for an absent optional input (also for i >= num_inputs()).
  virtual const Tensor* input_ptr(size_t i) const = 0;
  const Tensor& input(size_t i) const {
    const Tensor* t = i < num_inputs() ? input_ptr(i) : nullptr;
    if (!t) fail("required input " + std::to_string(i) + " is missing");
    return *t;
  }
  bool has_input(size_t i) const { return i < num_inputs() && input_ptr(i) != nullptr; }
  virtual size_t num_outputs() const = 0;
  virtual bool wants_output(size_t i) const = 0;
  // Allocate output i (storage reused across calls). The returned reference stays valid for the call.
  virtual Tensor& output(size_t i, DType dtype, std::span<const int64_t> dims) = 0;
  Tensor& output(size_t i, DType dtype, std::initializer_list<int64_t> dims) {
    return output(i, dtype, std::span<const int64_t>(dims.begin(), dims.size()));
  }
  // Output i is input `in` with new dims, sharing its memory (only for ops registered as aliasing).
  virtual void alias_output(size_t i, size_t in, std::span<const int64_t> dims) = 0;
  // Per-call scratch memory, 64-byte aligned, valid until run() returns. Calls may reuse the buffer:
  // ask once for everything you need.
  virtual void* scratch(size_t bytes) = 0;
  // State for subgraph k of this node (as returned in order by compile_subgraph).
  virtual PlanState& subgraph_state(size_t k) = 0;
  virtual const std::string& node_name() const = 0;
  // For `quiver bench --profile`: a kernel of a GEMM-type operator whose call ran no product (a Gemm
  // with a constant one-hot B runs as a gather or segment sums) says what it ran instead; the profile
  // lists that as a row of its own ("Gemm (one-hot gather)") whose time counts without FLOPs, like an
  // elementwise op's, so the GEMM rate is not inflated by 2*M*N*K never computed.
  virtual void report_no_product(const char* ran) { (void)ran; }
  [[noreturn]] virtual void fail(const std::string& message, const std::string& tensor = "",
                                 ErrorCode code = ErrorCode::InvalidArgument) const = 0;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void run(ExecContext& ctx) const = 0;
};

// Kernel from a lambda, for simple ops.
template <class F>
class LambdaKernel final : public Kernel {
 public:
  explicit LambdaKernel(F f) : f_(std::move(f)) {}
  void run(ExecContext& ctx) const override { f_(ctx); }
 private:
  F f_;
};
template <class F>
std::unique_ptr<Kernel> make_kernel(F f) { return std::make_unique<LambdaKernel<F>>(std::move(f)); }

using KernelBuilder = std::function<std::unique_ptr<Kernel>(BuildContext&)>;

// How an op stays bitwise reproducible (numerics=reproducible, onnx/numerics.hpp).
enum class Repro : uint8_t {
  None,     // no reproducible kernel: refused at load in reproducible mode
  Exact,    // the CPU kernel's bits depend on nothing but the values: integer, copy, compare, select,
            // or per element a fixed sequence of correctly rounded IEEE operations (+ - * / sqrt) and
            // fixed-order sums, compiled without contraction; no libm call, no ISA-dependent clone
  Variant,  // the builder picks its reproducible kernel when BuildContext::target().reproducible()
};

struct OpDef {
  std::string domain;  // "" = ai.onnx; "ai.onnx.ml"; "com.microsoft"
  std::string op_type;
  KernelBuilder build;
  bool aliases_input0 = false;  // output 0 may be a view of input 0 (Reshape, Squeeze, Identity ...)
  bool foldable = true;         // may be constant-folded (false for random ops)
  bool reads_dims_only = false; // the kernel reads input 0's dims, never its data (Shape, Size; views
                                // with aliases_input0 do too)
  Repro repro = Repro::None;
};

// The CPU kernels, keyed by (domain, op type). A table filled once per process from the op files
// (register_all_ops) and only read afterwards: it is the code's list of operators, not state.
class OpRegistry {
 public:
  static OpRegistry& instance();
  void add(OpDef def);
  void add(OpDef def, Repro repro) {
    def.repro = repro;
    add(std::move(def));
  }
  const OpDef* find(const std::string& domain, const std::string& op_type) const;
  std::vector<std::string> list() const;  // "domain::op" names, sorted

 private:
  std::vector<OpDef> defs_;
};

// Each op file defines `void register_op_<file stem>(OpRegistry&)`; a generated file calls them all.
#define QUIVER_REGISTER_OPS(stem) void register_op_##stem(::quiver::onnx::OpRegistry& registry)

}  // namespace quiver::onnx
