// Internal: the code-emitter target's contract with operators (quiver compile, src/aot).
//
// An op file may register an emitter for its op (QUIVER_REGISTER_EMITTERS below). The code emitter is
// a target (onnx/target.hpp): the compiler builds every node with its CPU builder (types, static
// shapes, folded constants), then select_kernel asks the emitter library, which calls the op's
// emitter with an Emit for the step. The
// emitter writes the step as C++17 source text (standard library only) or refuses with a reason; the
// generator (src/aot) refuses the whole model naming every step that was refused. Nothing is decided
// when the generated code runs except what depends on the runtime dims.
//
// What the emitted text may use (the generated code declares these around it):
//   shape code   : `const Shp& I<k>` (inputs' runtime dims), `Shp& O<k>` (to set), and `x<k>` for the
//                  inputs declared with read_values (their data: constants or values the generated
//                  code computes from dims alone, such as Shape -> Gather -> Concat chains);
//                  `fail("...")` throws with the step's name.
//   compute code : I<k>, O<k> (already set), `const T* x<k>` inputs, `T* y<k>` outputs (wanted ones),
//                  `K<j>` constants the emitter added, `scratch` (void*, 64-byte aligned) when asked;
//                  helpers of the runtime (src/aot/runtime.inc: Shp, gemm, conv, ...).
// A dim is a literal where the compiler knows it statically (din/dout), so loops over weights get
// constant bounds; the batch and symbolic dims stay runtime values.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "onnx/fusion.hpp"
#include "onnx/kernel.hpp"
#include "onnx/target.hpp"

namespace quiver::onnx {

// One step as source, held in the plan as its device kernel.
struct EmittedStep final : DeviceKernel {
  std::string shape;    // statements setting every wanted O<k>
  std::string compute;  // statements; empty for a view
  std::string scratch;  // bytes of scratch as an expression of I<k>/O<k> (empty: none)
  int view_of = -1;     // >= 0: output 0 is that input's memory with O0's dims (no compute)
  // The compute code sets its outputs' dims from the data (NonZero: `Shp& O<k>`); the shape code sets a
  // bound that sizes the workspace, and the dims of every later step that depends on them are computed
  // again at run time and checked against what the layout holds.
  bool data_dims = false;
  std::vector<uint8_t> reads_values;  // per input: the shape code reads its data
  // The step's form for when an input its shape code reads is computed from tensor data, so the shape
  // pass cannot read it (TopK's k from a tensor): `bound` sets each O<k> to dims at least as large as
  // the data can give without reading those inputs; `dims_from_data` (pass 2, with x<i>, before the
  // compute) sets the actual ones. The generator then runs the step as data_dims. Empty: refused.
  std::string bound;
  std::string dims_from_data;
  std::vector<uint8_t> reads_data;    // per input: the compute code reads its data (0: dims only)
  std::vector<std::shared_ptr<const Tensor>> consts;  // K<j>: constants made by the emitter (packed weights)
  std::string comment;  // what the step does, for the reader of the generated code
  // (name, text): namespace-scope definitions the code names (Emit::functor); the generated file holds
  // each once, whichever steps define it.
  std::vector<std::pair<std::string, std::string>> defs;
  std::vector<std::string> fused;  // the nodes fused into the step's node ("name (Op)", fusion.hpp)
  // The code performs the same IEEE operations in the same order as the engine's kernel for the
  // plan's numerics (Emit::bitwise); quiver compile --reproducible refuses every step without it.
  bool bitwise = false;
  // As the compiler typed the step's outputs (dtype, static dims with -1 for runtime ones).
  std::vector<DType> out_dtypes;
  std::vector<std::optional<std::vector<int64_t>>> out_shapes;
};

// Thrown by Emit::refuse; the emitter library turns it into "stays off the target: <why>".
class EmitRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Emit {
 public:
  explicit Emit(const StepQuery& q);

  const BuildContext& node() const { return q_.node; }
  const Attributes& attrs() const { return q_.node.attrs(); }
  const std::string& op() const { return q_.node.op_type(); }
  size_t num_inputs() const { return q_.node.num_inputs(); }
  bool has_input(size_t i) const { return q_.node.has_input(i); }
  const ValueInfo& in(size_t i) const { return q_.node.input(i); }
  size_t num_outputs() const { return q_.outputs.size(); }
  const ValueInfo& out(size_t i) const { return q_.outputs[i]; }
  bool wanted(size_t i) const { return i < q_.wanted.size() && q_.wanted[i]; }

  // Rank of input/output i; refuses when the compiler does not know it (or it exceeds the runtime's 8).
  int rank_in(size_t i) const;
  int rank_out(size_t i) const;
  // Dim `axis` of input/output i as a C++ expression: a literal when static, else I<i>.d[axis].
  std::string din(size_t i, int axis) const;
  std::string dout(size_t i, int axis) const;
  // Elements of input/output i (literal when fully static), and of dims [from, to) of input i.
  std::string numel_in(size_t i) const;
  std::string numel_out(size_t i) const;
  std::string span_in(size_t i, int from, int to) const;
  std::string span_out(size_t i, int from, int to) const;
  bool static_in(size_t i) const;  // every dim known
  // Element type of a dtype in the generated code ("float", "int64_t", ...); refuses the others.
  std::string ctype(DType t) const;
  std::string tin(size_t i) const { return ctype(in(i).dtype); }
  std::string tout(size_t i) const { return ctype(out(i).dtype); }

  // quiver compile --reproducible (#15): the plan is compiled for the engine's reproducible numerics
  // (constant folding and fusions included). An emitter then writes the operations of the op's
  // reproducible kernel in their order (src/aot/runtime_repro.inc holds the shared ones: rr::gemm,
  // rr::conv, the engine's own exp/tanh/...) and says so with bitwise(); other steps are refused.
  bool reproducible() const { return q_.node.target().reproducible(); }
  void bitwise() { step_->bitwise = true; }

  // Writing the step.
  void shape(const std::string& code) { step_->shape += code; }
  void compute(const std::string& code) { step_->compute += code; }
  // Output k gets these dims (C++ expressions).
  void set_dims(size_t k, const std::vector<std::string>& dims);
  void same_dims(size_t k, size_t i) { shape("O" + std::to_string(k) + " = I" + std::to_string(i) + ";\n"); }
  void read_values(size_t i) { step_->reads_values.at(i) = 1; }
  void dims_only(size_t i) { step_->reads_data.at(i) = 0; }
  void view(size_t i) { step_->view_of = static_cast<int>(i); }
  void data_dims() { step_->data_dims = true; }
  // The form for read_values inputs computed from tensor data (EmittedStep::bound).
  void data_form(const std::string& bound, const std::string& dims_from_data) {
    step_->bound = bound;
    step_->dims_from_data = dims_from_data;
  }
  void scratch(const std::string& bytes) { step_->scratch = bytes; }
  void comment(const std::string& text) { step_->comment = text; }
  // A constant the emitter made (weights repacked at compile time); returns its name, K<j>.
  std::string add_const(Tensor t);
  // The `axes` of Reduce*/Squeeze/Unsqueeze: the attribute before opset `input_from`, the constant
  // input 1 from then on (absent: empty; computed at run time: refused). Negative axes are counted
  // from `rank`; an axis out of range or repeated is refused.
  std::vector<int64_t> axes(int input_from, int rank);
  // Float constant B(k, j) = b[k * ldb + j * bk] (K x N) in the runtime gemm's panel layout
  // (rt::GemmArgs::Bp: panels of kGemmPanel columns, each [K][kGemmPanel], zero-padded past N),
  // `count` such matrices one after another (b advanced by `step` floats). Returns its name, K<j>.
  std::string add_packed_b(const float* b, int64_t K, int64_t N, int64_t ldb, int64_t bk, int64_t count = 1,
                           int64_t step = 0);
  // A function object `struct NAME { body };` at namespace scope, NAME = op_<base>_<hash of body>:
  // steps with the same operation on the same types name the same type, so a runtime template
  // (rt::binary, rt::ternary) is instantiated once per operation rather than once per step's lambda
  // (ParT: 100 rt::binary steps were half of its 1.7 MB of code). Returns NAME.
  std::string functor(const std::string& base, const std::string& body);
  [[noreturn]] void refuse(const std::string& why) const { throw EmitRefused(why); }

  std::unique_ptr<EmittedStep> take() { return std::move(step_); }

 private:
  const std::vector<int64_t>& dims_of(const ValueInfo& v, const char* what, size_t i) const;
  std::string dim_expr(const ValueInfo& v, const char* io, size_t i, int axis) const;
  const StepQuery& q_;
  std::unique_ptr<EmittedStep> step_;
};

// The emitters, keyed by (domain, op type): a table filled once per process from the op files that
// have one (each defines `QUIVER_REGISTER_EMITTERS(<file stem>)`; a generated file calls them all)
// and only read afterwards, like OpRegistry. An op without an emitter is refused by name.
using Emitter = std::function<void(Emit&)>;
class EmitterRegistry {
 public:
  static const EmitterRegistry& instance();
  void add(std::string domain, std::string op_type, Emitter emit);
  const Emitter* find(const std::string& domain, const std::string& op_type) const;
  std::vector<std::string> list() const;  // "domain::op" names, sorted

 private:
  std::vector<std::pair<std::string, Emitter>> emitters_;  // key "domain::op"
};
#define QUIVER_REGISTER_EMITTERS(stem) void register_emitters_##stem(::quiver::onnx::EmitterRegistry& emitters)

// Columns per packed panel of a gemm's B; equals rt::kNR in src/aot/runtime.inc.
inline constexpr int64_t kGemmPanel = 16;
// Floats of one K x N matrix packed by Emit::add_packed_b.
inline int64_t packed_b_floats(int64_t K, int64_t N) { return (N + kGemmPanel - 1) / kGemmPanel * kGemmPanel * K; }

// Helpers op files share.
// `emit`, marked bitwise in every mode: the op is Repro::Exact and its code does what its CPU kernel
// does (integer, copy, compare and select, or per element the same correctly rounded operations).
Emitter exact(Emitter emit);
// Elementwise float math: `expr` of `v` by default; in reproducible mode `rr::<repro_fn>(v)`, the
// engine's own function (float32 only).
Emitter emit_math(const std::string& expr, const std::string& repro_fn);
// `rr::Act act` set to the fused activation, computed as the reproducible kernels compute it.
std::string emit_repro_activation(const BuildContext& ctx);
std::string cfloat(double v);     // exact float literal ("0x1.8p+1f", or a NaN/Inf expression)
std::string cint(int64_t v);      // "INT64_C(...)"-free literal that is valid for int64_t
// `rt::Act act` set to the activation the fusion pass attached to a Gemm/Conv/MatMul node.
std::string emit_activation(const BuildContext& ctx);
// The same as an expression, `rt::Act{kind, alpha, beta}`, for activations carried otherwise.
std::string act_literal(const ActivationSpec& a);
// Elementwise with one input: `expr` computes the value from `v` (of the input's element type).
Emitter emit_unary(const std::string& expr, std::initializer_list<DType> types = {DType::F32, DType::F64});
// Binary broadcasting `expr` of `a` and `b` (e.g. "a + b"); output type from the compiler.
Emitter emit_binary(const std::string& expr, std::initializer_list<DType> types);
// Output 0 is input 0 with the compiler's output dims (Reshape, Flatten, Squeeze, Identity ...): the
// dims come from `dims_code` (shape statements) or, when empty, from a rule the caller writes.
Emitter emit_view(const std::string& dims_code, std::vector<size_t> value_inputs = {});

}  // namespace quiver::onnx
