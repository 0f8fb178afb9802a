// quiver compile: an ONNX plan compiled for the code-emitter target -> C++ source files.
//
// The engine's compiler does the model work (fusion, constant folding, types, static shapes, slot
// assignment by liveness); each step's op emitted its code when the compiler chose its kernel for this
// target (onnx/emit.hpp). Here the steps are stitched into one translation unit:
//   pass 1 (shapes): every value's runtime dims from the Dims, plus the small integer values that
//     depend on dims alone (Shape -> Gather -> Concat -> Reshape chains), computed in the frame;
//   layout: a buffer per value (views and in-place outputs share it), placed for the call's dims so
//     that buffers alive at the same time do not overlap (rt::place_buffers); offsets in the workspace;
//   pass 2 (compute): the steps in plan order, on pointers the layout fixed: one function per step that
//     computes (a fused group is one step), commented with its ONNX nodes, called in order by compute().
// A data-dependent dim (NonZero's count, EmittedStep::data_dims) is its bound in pass 1; pass 2 sets
// it, computes the dims (and small values) of every step downstream of it again, and checks each
// against the bytes the layout gave its buffer. A graph output whose runtime dims follow from one is
// sized by its bound; run() reports the dims it wrote (Outputs::dims, the C ABI's run_dims).
// The frame (dims of every value, buffer offsets, the small values) lives at the start of the workspace,
// so the generated code keeps no state of its own.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "aot/emitter_target.hpp"
#include "forest/codegen.hpp"
#include "onnx/ctype.hpp"
#include "onnx/emit.hpp"
#include "onnx/onnx_model_impl.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/core/util.hpp"
#include "quiver/forest/forest.hpp"

namespace quiver::aot {

extern const char* const kRuntimeSource;  // runtime.inc (generated runtime_source.cpp)
extern const char* const kAbiSource;      // abi.h
extern const char* const kReproSource;    // runtime_repro.inc (with core/repro's soft_fma.inc and math.inc)
extern const char* const kWeightsSource;  // weights.inc

namespace {
// The NAME.weights layout and checksum (wf::Header, wf::checksum): the text the generated code carries.
#include "aot/weights.inc"
}  // namespace

namespace {

namespace fs = std::filesystem;
using onnx::EmittedStep;
using onnx::Plan;
using onnx::Step;
using onnx::ValueRef;

std::string ident(const std::string& s) {
  std::string r;
  for (char c : s) r += std::isalnum(static_cast<unsigned char>(c)) != 0 ? c : '_';
  if (r.empty() || std::isdigit(static_cast<unsigned char>(r[0])) != 0) r = "_" + r;
  return r;
}

std::string json_str(const std::string& s) {
  std::string r = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') r += std::string("\\") + c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      r += b;
    } else r += c;
  }
  return r + "\"";
}
// A C++ string literal for any bytes.
std::string cstr(const std::string& s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') r += std::string("\\") + static_cast<char>(c);
    else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\%03o", c);
      r += b;
    } else r += static_cast<char>(c);
  }
  return r + "\"";
}

// Where a value's data is, as a C++ expression of the generated run().
struct Loc {
  enum Kind { Input, Const, Slot, Small, None } kind = None;
  size_t index = 0;  // input, constant, buffer (Slot: see Buffer), or byte offset in the small area
};

struct Value {
  DType dtype = DType::Undefined;
  Loc loc;
  int step = -1;     // defining step (-1: graph input)
  bool small = false;
  bool dyn = false;  // dims (or small data) depend on a data-dependent dim: computed again in pass 2
  // dims (or, for a small value, its data) may differ from the bound: a data-dependent dim reaches
  // them (dd <= dyn: a step computed again may still give the same dims, e.g. ScatterND's, its data's)
  bool dd = false;
  std::optional<std::vector<int64_t>> dims;  // as the compiler typed it (-1: runtime)
};

// Whether generated `code` names the identifier `id` (an emitter's shape code sees input k only as
// I<k> and x<k>, emit.hpp: an input it does not name cannot set its output's dims).
bool names(const std::string& code, const std::string& id) {
  auto part = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  for (size_t at = code.find(id); at != std::string::npos; at = code.find(id, at + 1))
    if ((at == 0 || !part(code[at - 1])) && (at + id.size() == code.size() || !part(code[at + id.size()]))) return true;
  return false;
}

// A region of the workspace: the values it holds (its first value, the views of it, and the outputs
// of steps the engine's plan runs in place on it) and the steps from its first value's to its last
// reader's (graph outputs: to the end); the buffers it must not overlap follow from those ranges
// (Generator::place_conflicts_). Each buffer gets its own
// offset (rt::place_buffers), so two values share bytes only when their lifetimes are disjoint:
// the engine's slots (one per value alive at once, each as large as the largest value it ever holds)
// cost up to the sum of those maxima instead of the largest set of values alive at once.
struct Buffer {
  std::vector<int> values;
  int first = 0, last = 0;
  double estimate = 0;  // bytes with runtime dims taken as 64: the placement order
};

struct ConstRec {
  std::shared_ptr<const Tensor> t;
  std::string name;
  bool used = false;
  bool in_code = false;  // read by the shape pass: in NAME.cpp even with a weights file
  uint64_t offset = 0;   // in the weights file's data
};

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  if (!f) throw_error(ErrorCode::Internal, "cannot write " + p.string(), {"", "", "", p.string()});
}

// Constants as exact literals.
void write_array(std::ostringstream& os, const ConstRec& c) {
  const Tensor& t = *c.t;
  const std::string ty = onnx::c_type_name(t.dtype());
  const int64_t n = t.numel();
  os << "alignas(64) extern const " << ty << " " << c.name << "[" << std::max<int64_t>(n, 1) << "] = {";
  if (n == 0) os << "0";
  for (int64_t i = 0; i < n; ++i) {
    if (i % 8 == 0) os << "\n ";
    switch (t.dtype()) {
      case DType::F32: os << onnx::cfloat(t.data<float>()[i]); break;
      case DType::F64: {
        const double v = t.data<double>()[i];
        if (std::isnan(v)) os << "std::numeric_limits<double>::quiet_NaN()";
        else if (std::isinf(v)) os << (v > 0 ? "" : "-") << "std::numeric_limits<double>::infinity()";
        else {
          char b[64];
          std::snprintf(b, sizeof b, "%a", v);
          os << b;
        }
        break;
      }
      case DType::I64: os << onnx::cint(t.data<int64_t>()[i]); break;
      case DType::I32: os << t.data<int32_t>()[i]; break;
      case DType::I16: os << t.data<int16_t>()[i]; break;
      case DType::I8: os << static_cast<int>(t.data<int8_t>()[i]); break;
      case DType::U8: os << static_cast<unsigned>(t.data<uint8_t>()[i]) << "u"; break;
      case DType::U16: os << t.data<uint16_t>()[i] << "u"; break;
      case DType::U32: os << t.data<uint32_t>()[i] << "u"; break;
      case DType::U64: os << t.data<uint64_t>()[i] << "ull"; break;
      case DType::Bool: os << (t.data<bool>()[i] ? "true" : "false"); break;
      default: break;
    }
    os << ",";
  }
  os << "};\n";
}

// Whether the step reads input i's data at all: its compute, or values its shape code reads.
bool reads_input(const EmittedStep& e, size_t i) {
  return (i < e.reads_data.size() && e.reads_data[i]) || (i < e.reads_values.size() && e.reads_values[i]);
}

// Whether the shape pass reads input i's data: values its shape code reads, or a small step's compute.
bool reads_in_shapes(const EmittedStep& e, bool small, size_t i) {
  const bool values = i < e.reads_values.size() && e.reads_values[i];
  const bool data = i < e.reads_data.size() && e.reads_data[i];
  return values || (small && data);
}

class Generator {
 public:
  Generator(const ModelInfo& info, const Plan& plan, const std::string& name, const CompileOptions& opt, std::string source,
            bool reproducible = false)
      : info_(info), plan_(plan), name_(name), opt_(opt), source_(std::move(source)), repro_(reproducible),
        file_(opt.weights == "file") {}

  CompileResult run(const fs::path& dir);

 private:
  void collect_dims();
  void walk();
  void mark_dims_only_steps();
  std::string ptr_expr(int id) const;
  std::string const_ptr(size_t k) const;
  void layout_weights();
  DType dtype_of(int id) const;
  std::string shape_decl(int id, const std::string& var) const;
  bool has_function(size_t si) const;
  std::string function_name(size_t si) const;
  std::string nodes_of(size_t si) const;
  std::string step_body(size_t si, bool shape_pass) const;
  static std::string indent(const std::string& code, const std::string& pre);
  std::string header() const;
  std::string source();
  std::string weights();
  std::string weights_file() const;
  std::string cmake() const;
  std::string info_json() const;
  std::vector<int64_t> dd_axes(size_t k) const;

  const ModelInfo& info_;
  const Plan& plan_;
  std::string name_;
  CompileOptions opt_;
  std::string source_;  // the model file's name
  bool repro_;          // reproducible numerics: the rr runtime, no contraction or fast math
  bool file_ = false;   // weights in NAME.weights (CompileOptions::weights == "file")
  std::string blob_;    // file_: the data of NAME.weights (after its header)
  uint64_t checksum_ = 0;      // of blocks_ (wf::Expect)
  std::vector<uint64_t> blocks_;  // the checksum of each 64 KiB block of blob_

  std::vector<std::string> dims_;                          // symbolic dims, ABI order
  std::vector<std::vector<std::string>> input_dims_;        // per input: per axis, literal or Dims field
  std::vector<std::string> in_names_, out_names_;          // C identifiers
  std::vector<Value> values_;                              // inputs, then step outputs
  std::vector<std::vector<int>> step_in_, step_out_;       // value id per step input / output (-1 none)
  std::vector<const EmittedStep*> emitted_;
  std::vector<std::unique_ptr<EmittedStep>> data_forms_;  // steps emitted_ runs in their data form
  std::vector<ConstRec> consts_;                           // plan constants then emitter constants
  std::vector<std::vector<size_t>> step_consts_;           // per step: its K<j> in consts_
  std::vector<Buffer> buffers_;                            // Loc::Slot index: the workspace's buffers
  std::vector<int> place_order_;                           // buffers by decreasing estimate
  std::vector<std::vector<int>> place_conflicts_;          // per place_order_ entry: earlier ones it overlaps
  std::vector<int> output_values_;                         // per graph output: value id (<= -2: constant)
  std::vector<uint8_t> small_steps_;                       // per step: runs in the shape pass
  std::vector<uint8_t> redo_steps_;                        // per step: reads a dyn value (dims again in pass 2)
  std::vector<uint8_t> dd_out_;                            // per graph output: its dims may depend on the data
  bool has_dd_ = false;                                    // some dd_out_: Outputs::dims, run(..., Outputs&)
  std::vector<uint8_t> dims_only_steps_;                   // per step: no one reads its outputs' data
  size_t small_bytes_ = 0;
};

// `s`, or s_2, s_3, ... if `seen` has it; then in `seen`.
std::string unique_in(std::set<std::string>& seen, std::string s) {
  std::string b = s;
  for (int k = 2; seen.count(s); ++k) s = b + "_" + std::to_string(k);
  seen.insert(s);
  return s;
}

void Generator::collect_dims() {
  const auto& info = info_;
  std::set<std::string> seen_in;
  for (size_t i = 0; i < info.inputs.size(); ++i) {
    const auto& ti = info.inputs[i];
    in_names_.push_back(unique_in(seen_in, ident(ti.name)));
    std::vector<std::string> axes;
    for (size_t a = 0; a < ti.shape.size(); ++a) {
      const Dim& d = ti.shape[a];
      if (d.is_fixed()) { axes.push_back(std::to_string(d.value)); continue; }
      std::string sym = ident(d.symbol.empty() ? ti.name + "_dim" + std::to_string(a) : d.symbol);
      if (std::find(dims_.begin(), dims_.end(), sym) == dims_.end()) dims_.push_back(sym);
      axes.push_back("d." + sym);
    }
    input_dims_.push_back(axes);
  }
  for (const auto& [k, v] : opt_.max_dims)
    if (std::find(dims_.begin(), dims_.end(), ident(k)) == dims_.end())
      throw_error(ErrorCode::InvalidArgument, "--max-dim names '" + k + "', which is not a symbolic dim of the inputs",
                  {info.name});
}

// Steps whose outputs' data nobody reads (only their dims: Shape, or the dims of an Expand's target)
// keep their shape code and get no buffer and no compute: exporters build full tensors to take their
// shape (ParT sums its four [N, 8, pairs] int64 index parts only to read Shape of the sum). Backwards
// over the plan: a step's data is wanted by a graph output, or by a step whose data is wanted and that
// reads it (its compute, its shape code's values, or a view of it). Steps with data-dependent dims run
// anyway (their compute sets the dims).
void Generator::mark_dims_only_steps() {
  const size_t n = plan_.steps.size();
  std::vector<int> holder(plan_.num_slots, -1);  // slot -> the step whose value it holds now
  std::vector<std::vector<int>> from(n);         // per step input: the step that made it (-1: none)
  for (size_t si = 0; si < n; ++si) {
    const Step& s = plan_.steps[si];
    for (const ValueRef r : s.inputs) from[si].push_back(r.kind == ValueRef::Slot ? holder.at(r.index) : -1);
    for (int o : s.outputs)
      if (o >= 0) holder[static_cast<size_t>(o)] = static_cast<int>(si);
  }
  std::vector<uint8_t> wanted(n, 0);
  for (const ValueRef r : plan_.outputs)
    if (r.kind == ValueRef::Slot && holder.at(r.index) >= 0) wanted[static_cast<size_t>(holder[r.index])] = 1;
  for (size_t si = n; si-- > 0;) {
    const EmittedStep& e = *emitted_[si];
    if (e.data_dims || !e.bound.empty()) wanted[si] = 1;  // (a data form's dims are set when it runs)
    if (!wanted[si]) continue;
    for (size_t i = 0; i < from[si].size(); ++i) {
      const bool reads = reads_input(e, i) || static_cast<int>(i) == e.view_of;
      if (reads && from[si][i] >= 0) wanted[static_cast<size_t>(from[si][i])] = 1;
    }
  }
  dims_only_steps_.assign(n, 0);
  for (size_t si = 0; si < n; ++si) dims_only_steps_[si] = wanted[si] ? 0 : 1;
}

void Generator::walk() {
  const auto& info = info_;
  // Refuse first, naming every step that cannot be emitted.
  std::string refused;
  for (const Step& s : plan_.steps) {
    const auto* e = dynamic_cast<const EmittedStep*>(s.device_kernel.get());
    if (s.placement != onnx::Placement::Device || !e)
      refused += "\n  " + s.label + ": " + (s.why_cpu.empty() ? "not emitted" : s.why_cpu);
    emitted_.push_back(e);
  }
  if (!refused.empty())
    throw_error(ErrorCode::Unsupported, "cannot compile ahead of time; steps the code emitter refused:" + refused,
                {info.name});

  for (const auto& c : plan_.constants) consts_.push_back({c, "c" + std::to_string(consts_.size()), false});
  for (size_t i = 0; i < info.inputs.size(); ++i) {
    Value v;
    v.dtype = info.inputs[i].dtype;
    v.loc = {Loc::Input, i};
    values_.push_back(v);
  }
  mark_dims_only_steps();
  std::vector<int> slot_holder(plan_.num_slots, -1);
  std::string data_dependent;
  for (size_t si = 0; si < plan_.steps.size(); ++si) {
    const Step& s = plan_.steps[si];
    const EmittedStep& e0 = *emitted_[si];  // as emitted (the data form may replace it below)
    std::vector<int> ins;
    for (size_t i = 0; i < s.inputs.size(); ++i) {
      const ValueRef r = s.inputs[i];
      const bool reads = reads_input(e0, i);
      if (r.kind == ValueRef::Absent) ins.push_back(-1);
      else if (r.kind == ValueRef::Input) ins.push_back(static_cast<int>(r.index));
      else if (r.kind == ValueRef::Const) {
        ins.push_back(-2 - static_cast<int>(r.index));  // constants: negative ids
        if (reads) consts_[r.index].used = true;
      } else {
        const int id = slot_holder.at(r.index);
        ins.push_back(id);
        if (id >= 0 && values_[static_cast<size_t>(id)].loc.kind == Loc::Slot) {
          Buffer& b = buffers_[values_[static_cast<size_t>(id)].loc.index];
          b.last = std::max(b.last, static_cast<int>(si));
        }
      }
    }
    step_consts_.emplace_back();
    for (const auto& k : e0.consts) {
      step_consts_.back().push_back(consts_.size());
      consts_.push_back({k, "s" + std::to_string(si) + "_k" + std::to_string(step_consts_.back().size() - 1), true});
    }
    auto known = [&](int id) { return id <= -2 || (id >= 0 && values_[static_cast<size_t>(id)].small); };
    // The shape code reads an input computed from tensor data: the step's data form, where it has one
    // (its outputs are bounded, and their dims set when it runs).
    std::vector<size_t> from_data;  // those inputs
    for (size_t i = 0; i < ins.size(); ++i)
      if (i < e0.reads_values.size() && e0.reads_values[i] && !known(ins[i])) from_data.push_back(i);
    if (!from_data.empty() && !e0.bound.empty()) {
      auto f = std::make_unique<EmittedStep>(e0);
      f->shape = e0.bound;
      f->data_dims = true;
      f->bound.clear();
      for (size_t i = 0; i < f->reads_values.size(); ++i)
        if (f->reads_values[i]) {
          f->reads_values[i] = 0;
          f->reads_data[i] = 1;
        }
      data_forms_.push_back(std::move(f));
      emitted_[si] = data_forms_.back().get();
    } else {
      for (size_t i : from_data)
        data_dependent += "\n  " + s.label + ": input " + std::to_string(i) +
                          " sets the output's dims but is computed from tensor data";
    }
    const EmittedStep& e = *emitted_[si];
    bool redo = false;
    for (int id : ins)
      if (id >= 0 && values_[static_cast<size_t>(id)].dyn) redo = true;
    // Small integer outputs computed from constants, dims and other such values: the shape pass.
    bool small = e.view_of < 0 && e.scratch.empty() && !e.data_dims && !dims_only_steps_[si];
    for (size_t k = 0; k < s.outputs.size() && small; ++k) {
      if (s.outputs[k] < 0) continue;
      const DType t = e.out_dtypes[k];
      if (t != DType::I64 && t != DType::I32 && t != DType::Bool) small = false;
      else if (!e.out_shapes[k]) small = false;
      else {
        int64_t n = 1;
        for (int64_t d : *e.out_shapes[k]) n = d < 0 ? -1 : (n < 0 ? -1 : n * d);
        if (n < 0 || n > 64) small = false;
      }
    }
    for (size_t i = 0; i < ins.size() && small; ++i)
      if (ins[i] != -1 && i < e.reads_data.size() && e.reads_data[i] && !known(ins[i])) small = false;
    // Data-dependent inputs: any (a small output's data may follow from them), and those the shape
    // code reads (the dims may).
    bool dd_in = false, dd_dims = false;
    for (size_t i = 0; i < ins.size(); ++i) {
      if (ins[i] < 0 || !values_[static_cast<size_t>(ins[i])].dd) continue;
      dd_in = true;
      if (names(e.shape, "I" + std::to_string(i)) || names(e.shape, "x" + std::to_string(i))) dd_dims = true;
    }
    std::vector<int> outs;
    for (size_t k = 0; k < s.outputs.size(); ++k) {
      if (s.outputs[k] < 0) { outs.push_back(-1); continue; }
      Value v;
      v.step = static_cast<int>(si);
      v.dtype = e.out_dtypes[k];
      v.dyn = redo || e.data_dims;
      v.dims = e.out_shapes[k];
      if (k == 0 && e.view_of >= 0) {
        const int src = ins.at(static_cast<size_t>(e.view_of));
        if (src <= -2) v.loc = {Loc::Const, static_cast<size_t>(-2 - src)};
        else {
          v.loc = values_.at(static_cast<size_t>(src)).loc;
          v.small = values_[static_cast<size_t>(src)].small;
        }
      } else if (dims_only_steps_[si]) {
        v.loc = {Loc::None, 0};  // only its dims are read: no buffer
      } else if (small) {
        int64_t n = 1;
        for (int64_t d : *e.out_shapes[k]) n *= d;
        small_bytes_ = (small_bytes_ + 7) / 8 * 8;
        v.loc = {Loc::Small, small_bytes_};
        v.small = true;
        small_bytes_ += static_cast<size_t>(std::max<int64_t>(n, 1)) * dtype_size(v.dtype);
      } else {
        // Written in place (the plan gives it the slot of one of this step's inputs): that buffer.
        const int held = slot_holder[static_cast<size_t>(s.outputs[k])];
        size_t buf = buffers_.size();
        if (held >= 0 && std::find(ins.begin(), ins.end(), held) != ins.end() &&
            values_[static_cast<size_t>(held)].loc.kind == Loc::Slot)
          buf = values_[static_cast<size_t>(held)].loc.index;
        if (buf == buffers_.size()) {
          buffers_.emplace_back();
          buffers_.back().first = buffers_.back().last = static_cast<int>(si);
        }
        double est = 1e12;  // no static rank: placed among the first
        if (e.out_shapes[k]) {
          est = static_cast<double>(dtype_size(v.dtype));
          for (int64_t d : *e.out_shapes[k]) est *= d < 0 ? 64.0 : static_cast<double>(d);
        }
        v.loc = {Loc::Slot, buf};
        buffers_[buf].values.push_back(static_cast<int>(values_.size()));
        buffers_[buf].estimate = std::max(buffers_[buf].estimate, est);
      }
      v.dd = e.data_dims || (v.small ? dd_in : dd_dims);
      outs.push_back(static_cast<int>(values_.size()));
      values_.push_back(v);
      slot_holder[static_cast<size_t>(s.outputs[k])] = outs.back();
    }
    // Constants the shape pass reads stay in the code (workspace_bytes() and output_dims() run it
    // without the weights file).
    for (size_t i = 0; i < ins.size(); ++i)
      if (ins[i] <= -2 && reads_in_shapes(e, small, i)) consts_[static_cast<size_t>(-2 - ins[i])].in_code = true;
    if (small)
      for (size_t k : step_consts_.back()) consts_[k].in_code = true;
    small_steps_.push_back(small ? 1 : 0);
    redo_steps_.push_back(redo ? 1 : 0);
    step_in_.push_back(ins);
    step_out_.push_back(outs);
  }
  if (!data_dependent.empty())
    throw_error(ErrorCode::Unsupported, "cannot compile ahead of time; data-dependent shapes:" + data_dependent,
                {info.name});
  for (const ValueRef r : plan_.outputs) {
    if (r.kind == ValueRef::Input) output_values_.push_back(static_cast<int>(r.index));
    else if (r.kind == ValueRef::Const) {
      output_values_.push_back(-2 - static_cast<int>(r.index));
      consts_[r.index].used = true;
    } else if (r.kind == ValueRef::Slot) output_values_.push_back(slot_holder.at(r.index));
    else throw_error(ErrorCode::Unsupported, "a graph output is not produced", {info.name});
  }
  // Outputs whose dims may depend on the data (a runtime axis downstream of a data-dependent dim):
  // run() reports their actual dims in Outputs::dims, so no output may be called `dims` then.
  for (size_t k = 0; k < output_values_.size(); ++k) {
    const int v = output_values_[k];
    bool dd = v >= 0 && values_[static_cast<size_t>(v)].dd;
    if (dd && values_[static_cast<size_t>(v)].dims)
      dd = std::any_of(values_[static_cast<size_t>(v)].dims->begin(), values_[static_cast<size_t>(v)].dims->end(),
                       [](int64_t d) { return d < 0; });
    dd_out_.push_back(dd ? 1 : 0);
    has_dd_ = has_dd_ || dd;
  }
  std::set<std::string> seen_out;
  if (has_dd_) seen_out.insert("dims");
  for (const auto& to : info.outputs) out_names_.push_back(unique_in(seen_out, ident(to.name)));
  // Graph outputs are copied out after the last step.
  for (int v : output_values_)
    if (v >= 0 && values_[static_cast<size_t>(v)].loc.kind == Loc::Slot)
      buffers_[values_[static_cast<size_t>(v)].loc.index].last = static_cast<int>(plan_.steps.size());
  // Placement order (largest first by the estimate, then by first step) and, per buffer, the earlier
  // ones whose lifetimes overlap its own: all that the run-time placement needs.
  place_order_.resize(buffers_.size());
  for (size_t b = 0; b < buffers_.size(); ++b) place_order_[b] = static_cast<int>(b);
  std::stable_sort(place_order_.begin(), place_order_.end(), [&](int a, int b) {
    return buffers_[static_cast<size_t>(a)].estimate > buffers_[static_cast<size_t>(b)].estimate;
  });
  place_conflicts_.assign(buffers_.size(), {});
  for (size_t i = 0; i < place_order_.size(); ++i) {
    const Buffer& a = buffers_[static_cast<size_t>(place_order_[i])];
    for (size_t j = 0; j < i; ++j) {
      const Buffer& b = buffers_[static_cast<size_t>(place_order_[j])];
      if (a.first <= b.last && b.first <= a.last) place_conflicts_[i].push_back(place_order_[j]);
    }
  }
}

// Constant k: an array of NAME.cpp / NAME_weights.cpp, or its place in the mapped weights file (F.w).
std::string Generator::const_ptr(size_t k) const {
  const ConstRec& c = consts_[k];
  if (!file_ || c.in_code) return "W::" + c.name;
  return "reinterpret_cast<const " + std::string(onnx::c_type_name(c.t->dtype())) + "*>(F.w + " + std::to_string(c.offset) + ")";
}

// file_: every constant the code reads (but those in the code) at a 64-byte aligned offset of the data.
void Generator::layout_weights() {
  if (!file_) return;
  for (auto& c : consts_) {
    if (!c.used || c.in_code) continue;
    c.offset = blob_.size();
    blob_.append(static_cast<const char*>(c.t->raw()), c.t->nbytes());
    blob_.resize((blob_.size() + (c.t->nbytes() == 0 ? 1 : 0) + 63) / 64 * 64, '\0');
  }
  const auto* d = reinterpret_cast<const unsigned char*>(blob_.data());
  for (uint64_t b = 0; b < wf::blocks_of(blob_.size()); ++b) blocks_.push_back(wf::block_sum(d, blob_.size(), b));
  checksum_ = wf::checksum(reinterpret_cast<const unsigned char*>(blocks_.data()), blocks_.size() * sizeof(uint64_t));
}

std::string Generator::ptr_expr(int id) const {
  if (id <= -2) return const_ptr(static_cast<size_t>(-2 - id));
  const Value& v = values_.at(static_cast<size_t>(id));
  const std::string t = onnx::c_type_name(v.dtype);
  switch (v.loc.kind) {
    case Loc::Input: return "in." + in_names_[v.loc.index];
    case Loc::Const: return const_ptr(v.loc.index);
    case Loc::Slot: return "reinterpret_cast<" + t + "*>(base + F.off[" + std::to_string(v.loc.index) + "])";
    case Loc::Small: return "reinterpret_cast<" + t + "*>(F.small + " + std::to_string(v.loc.index) + ")";
    default: return "nullptr";
  }
}

DType Generator::dtype_of(int id) const {
  if (id <= -2) return consts_[static_cast<size_t>(-2 - id)].t->dtype();
  return values_.at(static_cast<size_t>(id)).dtype;
}

std::string Generator::shape_decl(int id, const std::string& var) const {
  if (id <= -2) {
    const Tensor& t = *consts_[static_cast<size_t>(-2 - id)].t;
    std::string d;
    for (int64_t x : t.dims()) d += (d.empty() ? "" : ", ") + std::to_string(x);
    return "[[maybe_unused]] static const rt::Shp " + var + "{" + std::to_string(t.dims().size()) + ", {" + d + "}};";
  }
  return "[[maybe_unused]] const rt::Shp& " + var + " = F.s[" + std::to_string(id) + "];";
}

// Pass 2 runs a step (in a function of its own) unless it is a view, computed in the shape pass, or empty.
bool Generator::has_function(size_t si) const {
  const EmittedStep& e = *emitted_[si];
  if (dims_only_steps_[si]) return redo_steps_[si] != 0;
  return redo_steps_[si] != 0 || !(small_steps_[si] != 0 || e.view_of >= 0 || e.compute.empty());
}

// A step function's name: the step's index and its node's name as an identifier (what a profile shows).
std::string Generator::function_name(size_t si) const {
  const std::string& label = plan_.steps[si].label;  // "name (Op)"
  const size_t paren = label.rfind(" (");
  std::string n = ident(paren == std::string::npos ? label : label.substr(0, paren));
  while (!n.empty() && n.front() == '_') n.erase(n.begin());
  if (n.size() > 48) n.resize(48);
  return "step" + std::to_string(si) + (n.empty() ? "" : "_" + n);
}

// The ONNX nodes of a step: its node, then those fused into it.
std::string Generator::nodes_of(size_t si) const {
  std::string r = plan_.steps[si].label;
  for (const auto& f : emitted_[si]->fused) r += " + " + f;
  return r;
}

// One step's statements. Pass 1: dims (and a small step's values); pass 2: the compute.
std::string Generator::step_body(size_t si, bool shape_pass) const {
  std::ostringstream os;
  const Step& s = plan_.steps[si];
  const EmittedStep& e = *emitted_[si];
  const bool small = small_steps_[si] != 0;
  const bool redo = !shape_pass && redo_steps_[si] != 0;  // dims again, from data-dependent ones
  const auto& ins = step_in_[si];
  const auto& outs = step_out_[si];
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i] == -1) continue;
    os << "  " << shape_decl(ins[i], "I" + std::to_string(i)) << "\n";
  }
  for (size_t k = 0; k < outs.size(); ++k) {
    const std::string o = "O" + std::to_string(k);
    if (outs[k] < 0) os << "  [[maybe_unused]] rt::Shp " << o << "{};\n";
    else
      os << "  [[maybe_unused]] " << (shape_pass || redo || e.data_dims ? "" : "const ") << "rt::Shp& " << o << " = F.s["
         << outs[k] << "];\n";
  }
  // Data pointers: in pass 1 only constants and small values exist.
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i] == -1) continue;
    const bool avail = ins[i] <= -2 ? !shape_pass || reads_in_shapes(e, small, i) : values_[static_cast<size_t>(ins[i])].small;
    if (shape_pass && !avail) continue;
    if (ins[i] <= -2 && !consts_[static_cast<size_t>(-2 - ins[i])].used) continue;  // dims only: not in W
    os << "  [[maybe_unused]] const " << onnx::c_type_name(dtype_of(ins[i])) << "* x" << i << " = " << ptr_expr(ins[i]) << ";\n";
  }
  os << "  [[maybe_unused]] auto fail = [](const char* m) { fail_at(" << cstr(s.label) << ", m); };\n";
  // Pass 2 after a data-dependent dim: each slot output must fit what the layout (from the bounds) gave.
  auto fits = [&]() {
    for (size_t k = 0; k < outs.size(); ++k)
      if (outs[k] >= 0 && values_[static_cast<size_t>(outs[k])].loc.kind == Loc::Slot)
        os << "  if (O" << k << ".n() * " << dtype_size(values_[static_cast<size_t>(outs[k])].dtype) << " > F.cap["
           << values_[static_cast<size_t>(outs[k])].loc.index
           << "]) fail(\"data-dependent dims above the bound the workspace was sized for\");\n";
  };
  if (shape_pass || redo) {
    os << "  {\n" << indent(e.shape, "    ") << "  }\n";
    if (!e.scratch.empty() && !dims_only_steps_[si]) {
      if (shape_pass) os << "  F.scratch = std::max<int64_t>(F.scratch, static_cast<int64_t>(" << e.scratch << "));\n";
      else os << "  if (static_cast<int64_t>(" << e.scratch << ") > F.scratch) fail(\"scratch above the bound the workspace was sized for\");\n";
    }
    if (redo) fits();
  }
  const bool run_compute = shape_pass ? small : !(e.view_of >= 0 || e.compute.empty() || dims_only_steps_[si]);
  if (run_compute) {
    for (size_t k = 0; k < outs.size(); ++k)
      os << "  [[maybe_unused]] " << onnx::c_type_name(e.out_dtypes[k]) << "* y" << k << " = "
         << (outs[k] < 0 ? std::string("nullptr") : ptr_expr(outs[k])) << ";\n";
    for (size_t j = 0; j < step_consts_[si].size(); ++j) {
      const auto& c = consts_[step_consts_[si][j]];
      os << "  [[maybe_unused]] const " << onnx::c_type_name(c.t->dtype()) << "* K" << j << " = " << const_ptr(step_consts_[si][j])
         << ";\n";
    }
    if (!e.scratch.empty()) os << "  [[maybe_unused]] void* scratch = base + F.scratch_off;\n";
    if (shape_pass) os << "  [[maybe_unused]] unsigned char* base = nullptr;\n";
    // A data form sets its dims from the data and checks them before it writes.
    const bool dims_first = !shape_pass && e.data_dims && !e.dims_from_data.empty();
    if (dims_first) {
      os << "  {\n" << indent(e.dims_from_data, "    ") << "  }\n";
      fits();
    }
    os << "  {\n" << indent(e.compute, "    ") << "  }\n";
    if (!shape_pass && e.data_dims && !dims_first) fits();
  }
  return os.str();
}

std::string Generator::indent(const std::string& code, const std::string& pre) {
  std::string r;
  size_t at = 0;
  while (at < code.size()) {
    size_t nl = code.find('\n', at);
    if (nl == std::string::npos) nl = code.size();
    if (nl > at) r += pre + code.substr(at, nl - at);
    r += "\n";
    at = nl + 1;
  }
  return r;
}

// The axes of data-dependent output k that may vary with the data: its runtime ones (every declared one
// when the compiler does not know its rank).
std::vector<int64_t> Generator::dd_axes(size_t k) const {
  const Value& v = values_.at(static_cast<size_t>(output_values_[k]));
  std::vector<int64_t> r;
  const size_t rank = v.dims ? v.dims->size() : info_.outputs[k].shape.size();
  for (size_t a = 0; a < rank; ++a)
    if (!v.dims || (*v.dims)[a] < 0) r.push_back(static_cast<int64_t>(a));
  return r;
}

std::string Generator::info_json() const {
  const auto& info = info_;
  std::ostringstream j;
  j << "{\"name\":" << json_str(name_) << ",\"model\":" << json_str(info.name) << ",\"source_sha256\":"
    << json_str(info.sha256) << ",\"quiver_version\":" << json_str(QUIVER_AOT_VERSION) << ",\"format\":"
    << json_str(info.format) << ",\"target\":" << json_str(opt_.target)
    << ",\"numerics\":" << json_str(repro_ ? "reproducible" : "default") << ",\"weights\":" << json_str(file_ ? "file" : "source")
    << ",\"abi\":3,\"dims\":[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    auto it = opt_.max_dims.find(dims_[i]);
    j << (i ? "," : "") << "{\"name\":" << json_str(dims_[i]) << ",\"max\":" << (it == opt_.max_dims.end() ? -1 : it->second)
      << "}";
  }
  auto tensors = [&](const std::vector<TensorInfo>& ts, const std::vector<std::string>& cn, bool inputs) {
    for (size_t i = 0; i < ts.size(); ++i) {
      j << (i ? "," : "") << "{\"name\":" << json_str(ts[i].name) << ",\"c_name\":" << json_str(cn[i])
        << ",\"dtype\":" << json_str(std::string(dtype_kserve_name(ts[i].dtype))) << ",\"shape\":[";
      for (size_t a = 0; a < ts[i].shape.size(); ++a) {
        j << (a ? "," : "");
        if (ts[i].shape[a].is_fixed()) j << ts[i].shape[a].value;
        else if (inputs) j << json_str(input_dims_[i][a].substr(2));
        else j << json_str(ts[i].shape[a].symbol.empty() ? "?" : ts[i].shape[a].symbol);
      }
      j << "]";
      if (!inputs && dd_out_[i] != 0) {
        j << ",\"data_dependent_axes\":[";
        const auto axes = dd_axes(i);
        for (size_t a = 0; a < axes.size(); ++a) j << (a ? "," : "") << axes[a];
        j << "]";
      }
      j << "}";
    }
  };
  j << "],\"inputs\":[";
  tensors(info.inputs, in_names_, true);
  j << "],\"outputs\":[";
  tensors(info.outputs, out_names_, false);
  j << "]}";
  return j.str();
}

std::string Generator::header() const {
  const auto& info = info_;
  std::ostringstream h;
  h << "// Generated by quiver compile " << QUIVER_AOT_VERSION << " from " << source_
    << " (sha256 " << info.sha256 << ").\n"
    << "// C++17, standard library only. Reentrant: run() keeps no state; any number of threads may call it at\n"
    << "// once, each with its own workspace of workspace_bytes(dims) bytes.\n"
    << "#pragma once\n#include <cstddef>\n#include <cstdint>\n\n"
    << "extern \"C\" {\n" << kAbiSource << "}\n\n"
    << "namespace " << name_ << " {\n\n"
    << "// The runtime values of the symbolic dims (batch, particle counts).\n"
    << "struct Dims {\n";
  for (const auto& d : dims_) h << "  int64_t " << d << " = 1;\n";
  if (dims_.empty()) h << "  // none: every dim is fixed\n";
  h << "};\n\n";
  h << "constexpr size_t kNumInputs = " << info.inputs.size() << ", kNumOutputs = " << info.outputs.size() << ";\n\n";
  h << "// Inputs, row-major. Shapes:\n";
  for (size_t i = 0; i < info.inputs.size(); ++i) {
    std::string shp;
    for (const auto& a : input_dims_[i]) shp += (shp.empty() ? "" : ", ") + (a.rfind("d.", 0) == 0 ? a.substr(2) : a);
    h << "//   " << in_names_[i] << " (" << info.inputs[i].name << "): " << dtype_name(info.inputs[i].dtype) << " ["
      << shp << "]\n";
  }
  h << "struct Inputs {\n  Dims dims;\n";
  for (size_t i = 0; i < info.inputs.size(); ++i)
    h << "  const " << onnx::c_type_name(info.inputs[i].dtype) << "* " << in_names_[i] << " = nullptr;\n";
  h << "};\n\n";
  if (has_dd_) {
    h << "// The dims of a tensor: rank and extents.\nstruct Shape {\n  int rank = 0;\n  int64_t d[8] = {};\n};\n\n"
      << "// Every output's dims as run() wrote it.\nstruct OutputDims {\n";
    for (size_t i = 0; i < info.outputs.size(); ++i) h << "  Shape " << out_names_[i] << ";\n";
    h << "};\n\n"
      << "// Outputs: caller-owned buffers of output_dims() elements. The dims of those marked \"data-dependent\"\n"
      << "// depend on the input values (NonZero's count): output_dims() gives their bound, which sizes the\n"
      << "// buffer; run() writes the data row-major in the actual dims at the start of the buffer and sets\n"
      << "// `dims` to every output's actual dims (an error naming the step or output if the data exceeds a bound).\n";
  } else {
    h << "// Outputs: caller-owned buffers of output_dims() elements.\n";
  }
  h << "struct Outputs {\n";
  for (size_t i = 0; i < info.outputs.size(); ++i) {
    h << "  " << onnx::c_type_name(info.outputs[i].dtype) << "* " << out_names_[i] << " = nullptr;  // " << info.outputs[i].name;
    if (dd_out_[i] != 0) {
      std::string axes;
      for (int64_t a : dd_axes(i)) axes += (axes.empty() ? "" : ", ") + std::to_string(a);
      h << ": data-dependent dims (" << (axes.find(',') == std::string::npos ? "axis " : "axes ") << axes << ")";
    }
    h << "\n";
  }
  if (has_dd_) h << "  OutputDims dims;  // set by run()\n";
  h << "};\n\n"
    << "// Bytes of workspace run() needs for these dims (throws std::invalid_argument on bad dims).\n"
    << "size_t workspace_bytes(const Dims& dims);\n"
    << "// Dims of output `k` (rank returned; `out` holds up to 8).\n"
    << "int output_dims(const Dims& dims, size_t k, int64_t* out);\n"
    << "// Runs the model. `workspace` holds at least workspace_bytes(in.dims) bytes (any alignment).\n"
    << (has_dd_ ? "// Sets out.dims to the dims it wrote.\nvoid run(const Inputs& in, Outputs& out, void* workspace, size_t workspace_size);\n"
                : "void run(const Inputs& in, const Outputs& out, void* workspace, size_t workspace_size);\n")
    << "// Metadata (JSON): model, source SHA-256, Quiver version, inputs and outputs with dims.\n"
    << "const char* info();\n"
    << (file_ ? "// The weights are in " + name_ + ".weights: maps `path` (null: " + name_ + ".weights in the folder of the library,\n"
                "// or of the program it is linked into) once and checks it; run() does so on first use otherwise.\n"
                "// Throws std::runtime_error naming the file and what is wrong with it. The weights stay loaded and\n"
                "// unchanged while the library is; loading another file then is an error.\n"
              : "// The weights are built into the library: nothing to load (the same API as --weights file).\n")
    << "void load_weights(const char* path = nullptr);\n\n"
    << "}  // namespace " << name_ << "\n\n"
    << "extern \"C\" {\n"
    << "const char* " << name_ << "_info(void);\n"
    << "int " << name_ << "_workspace_bytes(const int64_t* dims, size_t* bytes, char* err, size_t err_len);\n"
    << "int " << name_ << "_output_dims(const int64_t* dims, int output, int64_t* out_dims, int* rank, char* err, size_t err_len);\n"
    << "int " << name_ << "_run(const int64_t* dims, const void* const* inputs, void* const* outputs, void* workspace,\n"
    << "    size_t workspace_bytes, char* err, size_t err_len);\n"
    << "// " << name_ << "_run, and each output's dims as written: output k's rank in out_ranks[k], its dims in\n"
    << "// out_dims[k * QUIVER_AOT_MAX_RANK ...]." << (has_dd_ ? " " + name_ + "_run fails on data-dependent dims that differ from\n"
                                                               "// " + name_ + "_output_dims (their bound)." : "") << "\n"
    << "int " << name_ << "_run_dims(const int64_t* dims, const void* const* inputs, void* const* outputs, int* out_ranks,\n"
    << "    int64_t* out_dims, void* workspace, size_t workspace_bytes, char* err, size_t err_len);\n"
    << "int " << name_ << "_load_weights(const char* path, char* err, size_t err_len);\n"
    << "}\n";
  return h.str();
}

std::string Generator::source() {
  const auto& info = info_;
  std::ostringstream c;
  c << "// Generated by quiver compile " << QUIVER_AOT_VERSION << " from " << source_
    << ": " << plan_.steps.size() << " steps.\n"
    << "#include \"" << name_ << ".hpp\"\n\n"
    << "#include <algorithm>\n#include <cmath>\n#include <cstdint>\n#include <cstring>\n#include <exception>\n"
    << "#include <limits>\n#include <memory>\n#include <new>\n#include <stdexcept>\n#include <string>\n#include <type_traits>\n"
    << (file_ ? "#include <atomic>\n#include <cerrno>\n#include <cstdio>\n#include <fstream>\n#include <mutex>\n"
                "#if defined(__unix__) || defined(__APPLE__)\n#include <dlfcn.h>\n#include <fcntl.h>\n#include <sys/mman.h>\n"
                "#include <sys/stat.h>\n#include <unistd.h>\n#endif\n"
              : "")
    << "\n"
    << (repro_ ? "// Reproducible numerics: bitwise equal to the engine's reproducible mode on every instruction set,\n"
                 "// as long as no multiply and add is contracted and no math is reassociated.\n"
                 "#if defined(__FAST_MATH__)\n#error \"reproducible numerics: build without -ffast-math (and with -ffp-contract=off)\"\n#endif\n\n"
               : "")
    << "namespace {\n" << kRuntimeSource << (repro_ ? kReproSource : "") << (file_ ? kWeightsSource : "") << "}  // namespace\n\n"
    << "namespace " << name_ << " {\n\n";
  if (!file_) {
    c << "namespace W {  // " << name_ << "_weights.cpp\n";
    for (const auto& k : consts_)
      if (k.used)
        c << "extern const " << onnx::c_type_name(k.t->dtype()) << " " << k.name << "[" << std::max<int64_t>(k.t->numel(), 1) << "];\n";
  } else {
    // The constants the shape pass reads (workspace_bytes() and output_dims() need no weights file).
    c << "namespace W {  // the constants the shape pass reads; the others are in " << name_ << ".weights\n";
    for (const auto& k : consts_)
      if (k.used && k.in_code) write_array(c, k);
  }
  c << "}  // namespace W\n\nnamespace {\n\n"
    << "constexpr char kInfo[] = " << cstr(info_json()) << ";\n\n";
  if (file_) {
    c << "// What the library was compiled with; " << name_ << ".weights must hold exactly this.\n"
      << "constexpr uint64_t kWeightBlocks[" << std::max<size_t>(blocks_.size(), 1) << "] = {";
    for (size_t b = 0; b < blocks_.size(); ++b) c << (b ? (b % 6 ? ", " : ",\n    ") : "") << "0x" << wf::hex(blocks_[b]) << "ull";
    c << "};\n"
      << "constexpr wf::Expect kWeights{" << cstr(name_) << ", " << cstr(info_.sha256) << ", " << blob_.size() << "ull, 0x"
      << wf::hex(checksum_) << "ull, kWeightBlocks};\n"
      << "wf::Store& weights_store() {\n  static wf::Store store;  // set once, read-only afterwards\n  return store;\n}\n\n";
  }
  size_t max_conflicts = 0;
  for (const auto& cf : place_conflicts_) max_conflicts = std::max(max_conflicts, cf.size());
  if (!buffers_.empty()) {
    // The workspace's buffers for rt::place_buffers: the order, and per entry the earlier ones alive
    // at the same time (kPlaceConflicts[kPlaceBegin[i] .. kPlaceBegin[i + 1])).
    auto list = [&](const char* name, const std::vector<int>& v) {
      c << "constexpr int32_t " << name << "[] = {";
      for (size_t i = 0; i < v.size(); ++i) c << (i ? (i % 16 ? ", " : ",\n    ") : "") << v[i];
      if (v.empty()) c << "0";
      c << "};\n";
    };
    std::vector<int> begin{0}, all;
    for (const auto& cf : place_conflicts_) {
      all.insert(all.end(), cf.begin(), cf.end());
      begin.push_back(static_cast<int>(all.size()));
    }
    list("kPlaceOrder", place_order_);
    list("kPlaceBegin", begin);
    list("kPlaceConflicts", all);
    c << "\n";
  }
  c << "[[noreturn]] void fail_at(const char* step, const char* msg) {\n"
    << "  throw std::invalid_argument(std::string(\"" << name_ << ": \") + step + \": \" + msg);\n}\n\n"
    << "// Every value's dims, the buffers' offsets and the small values: the start of the workspace.\n"
    << "struct Frame {\n  rt::Shp s[" << std::max<size_t>(values_.size(), 1) << "];\n"
    << "  int64_t off[" << std::max<size_t>(buffers_.size(), 1) << "], cap[" << std::max<size_t>(buffers_.size(), 1) << "];\n"
    << "  int64_t place[" << 2 * std::max<size_t>(max_conflicts, 1) << "];  // rt::place_buffers' list\n"
    << "  int64_t scratch, scratch_off, total;\n"
    << (file_ ? "  const unsigned char* w;  // the weights file's data\n" : "")
    << "  alignas(64) unsigned char small[" << std::max<size_t>(small_bytes_, 1) << "];\n};\n\n"
    << "constexpr int64_t round64(int64_t b) { return (b + 63) / 64 * 64; }\n\n";
  // The function objects steps name (Emit::functor), each once.
  std::map<std::string, const std::string*> defs;
  for (const EmittedStep* e : emitted_)
    for (const auto& [n, text] : e->defs) {
      auto [it, fresh] = defs.emplace(n, &text);
      if (fresh) c << text;
      else if (*it->second != text)
        throw_error(ErrorCode::Internal, "two different definitions named " + n, {info_.name});
    }
  if (!defs.empty()) c << "\n";
  // Pass 1.
  c << "// Pass 1: dims of every value (and the values computed from dims alone), then the layout.\n"
    << "void shapes(const Dims& d, Frame& F) {\n  (void)d;\n";
  for (const auto& dm : dims_) {
    auto it = opt_.max_dims.find(dm);
    c << "  if (d." << dm << " < 0) fail_at(\"dims\", \"" << dm << " is negative\");\n";
    if (it != opt_.max_dims.end())
      c << "  if (d." << dm << " > " << it->second << ") fail_at(\"dims\", \"" << dm << " is above its declared maximum "
        << it->second << " (quiver compile --max-dim)\");\n";
  }
  for (size_t i = 0; i < info.inputs.size(); ++i) {
    c << "  F.s[" << i << "].r = " << input_dims_[i].size() << ";";
    for (size_t a = 0; a < input_dims_[i].size(); ++a) c << " F.s[" << i << "].d[" << a << "] = " << input_dims_[i][a] << ";";
    c << "\n";
  }
  c << "  F.scratch = 0;\n";
  for (size_t si = 0; si < plan_.steps.size(); ++si)
    c << "  {  // " << plan_.steps[si].label << "\n" << indent(step_body(si, true), "  ") << "  }\n";
  c << "  int64_t at = round64(static_cast<int64_t>(sizeof(Frame)));\n";
  for (size_t b = 0; b < buffers_.size(); ++b) {
    c << "  F.cap[" << b << "] = ";
    const auto& vs = buffers_[b].values;
    for (size_t j = 0; j + 1 < vs.size(); ++j) c << "std::max<int64_t>(";
    for (size_t j = 0; j < vs.size(); ++j)
      c << (j ? ", " : "") << "F.s[" << vs[j] << "].n() * " << dtype_size(values_[static_cast<size_t>(vs[j])].dtype)
        << (j ? ")" : "");
    c << ";\n";
  }
  if (!buffers_.empty())
    c << "  at += rt::place_buffers(F.off, F.cap, kPlaceOrder, kPlaceBegin, kPlaceConflicts, " << buffers_.size()
      << ", F.place, at);\n";
  c << "  F.scratch_off = at;\n  F.total = at + round64(F.scratch);\n}\n\n";
  c << "unsigned char* align64(void* p) {\n"
    << "  return reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(p) + 63) / 64 * 64);\n}\n\n";
  // Pass 2: one function per step that computes (a fused group is one step), called in plan order by
  // compute(). A step function sees the caller's inputs, the frame and the workspace, nothing else.
  c << "// Pass 2: one function per plan step, in plan order (compute() below calls them).\n\n";
  for (size_t si = 0; si < plan_.steps.size(); ++si) {
    if (!has_function(si)) continue;
    const EmittedStep& e = *emitted_[si];
    c << "// " << nodes_of(si) << (e.comment.empty() ? "" : "\n//   " + e.comment) << "\n"
      << "void " << function_name(si) << "([[maybe_unused]] const Inputs& in, [[maybe_unused]] Frame& F,"
      << " [[maybe_unused]] unsigned char* base) {\n" << step_body(si, false) << "}\n\n";
  }
  // With data-dependent outputs, `report_dims` says whether the caller learns their dims (run(), the C
  // ABI's run_dims) or must find output_dims()'s (the C ABI's run).
  const std::string report_param = has_dd_ ? ", bool report_dims" : "";
  c << "void compute([[maybe_unused]] const Inputs& in, const Outputs& out, [[maybe_unused]] Frame& F,"
    << " [[maybe_unused]] unsigned char* base" << report_param << ") {\n";
  // An output downstream of a data-dependent dim: the caller sized it by output_dims() (the bounds).
  for (size_t k = 0; k < output_values_.size(); ++k)
    if (output_values_[k] >= 0 && values_[static_cast<size_t>(output_values_[k])].dyn)
      c << "  const rt::Shp sized" << k << " = F.s[" << output_values_[k] << "];\n";
  for (size_t si = 0; si < plan_.steps.size(); ++si) {
    const EmittedStep& e = *emitted_[si];
    if (has_function(si)) c << "  " << function_name(si) << "(in, F, base);\n";
    else
      c << "  // " << plan_.steps[si].label << ": "
        << (e.view_of >= 0 ? "a view of input " + std::to_string(e.view_of) + " (no code)"
                           : small_steps_[si] ? std::string("computed from dims in the shape pass")
                           : dims_only_steps_[si] ? std::string("only its dims are read (no buffer, no code)")
                                                  : std::string("no code"))
        << "\n";
  }
  for (size_t k = 0; k < output_values_.size(); ++k) {
    const int v = output_values_[k];
    const std::string on = out_names_[k], fs = "F.s[" + std::to_string(v) + "]";
    if (dd_out_[k] != 0)
      c << "  if (" << fs << ".n() > sized" << k << ".n()) fail_at(\"outputs\", \"output " << on
        << " has more elements than output_dims() gave its buffer (data-dependent dims above their bound)\");\n"
        << "  if (!report_dims && !rt::same(" << fs << ", sized" << k << ")) fail_at(\"outputs\", \"the dims of output " << on
        << " depend on tensor data and differ from output_dims(): " << name_ << "_run_dims reports them\");\n";
    else if (v >= 0 && values_[static_cast<size_t>(v)].dyn)
      c << "  if (!rt::same(" << fs << ", sized" << k << ")) fail_at(\"outputs\", \"the dims of output " << on
        << " depend on tensor data and differ from output_dims()\");\n";
    const std::string n = v <= -2 ? std::to_string(consts_[static_cast<size_t>(-2 - v)].t->numel()) : fs + ".n()";
    c << "  std::memcpy(out." << on << ", " << ptr_expr(v) << ", static_cast<size_t>(" << n << ") * sizeof(*out." << on << "));\n";
  }
  c << "}\n\n";
  // Output k's dims from the frame.
  c << "// Dims of output k (rank returned; `out` holds up to 8): after shapes() their bounds, after compute()\n"
    << "// the dims it wrote.\n"
    << "int frame_dims(const Frame& F, size_t k, int64_t* out) {\n"
    << "  static constexpr int64_t ids[] = {";
  for (size_t k = 0; k < output_values_.size(); ++k) c << (k ? ", " : "") << output_values_[k];
  if (output_values_.empty()) c << "0";
  c << "};\n  const int64_t v = ids[k];\n";
  c << "  if (v >= 0) {\n    for (int a = 0; a < F.s[v].r; ++a) out[a] = F.s[v].d[a];\n    return F.s[v].r;\n  }\n";
  c << "  switch (v) {\n";
  for (int v : output_values_)
    if (v <= -2) {
      const Tensor& t = *consts_[static_cast<size_t>(-2 - v)].t;
      c << "    case " << v << ":";
      for (size_t a = 0; a < t.dims().size(); ++a) c << " out[" << a << "] = " << t.dims()[a] << ";";
      c << " return " << t.dims().size() << ";\n";
    }
  c << "    default: return 0;\n  }\n}\n\n";
  // Every form of run: checks, the shape pass, compute; the frame holds the outputs' dims afterwards.
  c << "const Frame& execute(const Inputs& in, const Outputs& out, void* workspace, size_t workspace_size" << report_param
    << ") {\n";
  for (size_t i = 0; i < in_names_.size(); ++i)
    c << "  if (!in." << in_names_[i] << ") fail_at(\"run\", \"input " << in_names_[i] << " is null\");\n";
  for (size_t i = 0; i < out_names_.size(); ++i)
    c << "  if (!out." << out_names_[i] << ") fail_at(\"run\", \"output " << out_names_[i] << " is null\");\n";
  c << "  unsigned char* base = align64(workspace);\n"
    << "  if (workspace_size < static_cast<size_t>(sizeof(Frame)) + 64) fail_at(\"run\", \"workspace too small\");\n"
    << "  Frame& F = *new (base) Frame;\n  shapes(in.dims, F);\n"
    << "  if (static_cast<size_t>(F.total) + static_cast<size_t>(base - static_cast<unsigned char*>(workspace)) > workspace_size)\n"
    << "    fail_at(\"run\", \"workspace too small for these dims (see workspace_bytes)\");\n"
    << (file_ ? "  F.w = weights_store().data(kWeights);\n" : "")
    << "  compute(in, out, F, base" << (has_dd_ ? ", report_dims" : "") << ");\n  return F;\n}\n\n}  // namespace\n\n";
  // API.
  c << "const char* info() { return kInfo; }\n\n"
    << (file_ ? "void load_weights(const char* path) { weights_store().load(kWeights, path); }\n\n"
              : "void load_weights(const char*) {}\n\n")
    << "size_t workspace_bytes(const Dims& dims) {\n"
    << "  std::unique_ptr<Frame> F(new Frame);\n  shapes(dims, *F);\n  return static_cast<size_t>(F->total) + 64;\n}\n\n"
    << "int output_dims(const Dims& dims, size_t k, int64_t* out) {\n"
    << "  if (k >= kNumOutputs) throw std::invalid_argument(\"" << name_ << ": no output \" + std::to_string(k));\n"
    << "  std::unique_ptr<Frame> F(new Frame);\n  shapes(dims, *F);\n  return frame_dims(*F, k, out);\n}\n\n";
  if (has_dd_) {
    c << "void run(const Inputs& in, Outputs& out, void* workspace, size_t workspace_size) {\n"
      << "  const Frame& F = execute(in, out, workspace, workspace_size, true);\n";
    for (size_t k = 0; k < out_names_.size(); ++k)
      c << "  out.dims." << out_names_[k] << ".rank = frame_dims(F, " << k << ", out.dims." << out_names_[k] << ".d);\n";
    c << "}\n\n";
  } else {
    c << "void run(const Inputs& in, const Outputs& out, void* workspace, size_t workspace_size) {\n"
      << "  execute(in, out, workspace, workspace_size);\n}\n\n";
  }
  c << "}  // namespace " << name_ << "\n\n";
  // C ABI.
  auto dims_from = [&]() {
    std::string s = "  " + name_ + "::Dims d;\n";
    for (size_t i = 0; i < dims_.size(); ++i) s += "  d." + dims_[i] + " = dims[" + std::to_string(i) + "];\n";
    if (dims_.empty()) s += "  (void)dims;\n";
    return s;
  };
  c << "namespace {\nint report(const std::exception& e, char* err, size_t err_len) {\n"
    << "  if (err && err_len) {\n    std::strncpy(err, e.what(), err_len - 1);\n    err[err_len - 1] = 0;\n  }\n  return 1;\n}\n\n"
    << "// The C ABI's arrays as the C++ API's structs.\n"
    << "void bind(const int64_t* dims, const void* const* inputs, void* const* outputs, " << name_ << "::Inputs& in, " << name_
    << "::Outputs& out) {\n";
  {
    std::string d = dims_from();
    c << d << "  in.dims = d;\n";
  }
  for (size_t i = 0; i < in_names_.size(); ++i)
    c << "  in." << in_names_[i] << " = static_cast<const " << onnx::c_type_name(info.inputs[i].dtype) << "*>(inputs[" << i << "]);\n";
  for (size_t i = 0; i < out_names_.size(); ++i)
    c << "  out." << out_names_[i] << " = static_cast<" << onnx::c_type_name(info.outputs[i].dtype) << "*>(outputs[" << i << "]);\n";
  if (in_names_.empty()) c << "  (void)inputs;\n";
  if (out_names_.empty()) c << "  (void)outputs;\n";
  c << "}\n}  // namespace\n\n"
    << "extern \"C\" {\n"
    << "const char* " << name_ << "_info(void) { return " << name_ << "::info(); }\n"
    << "int " << name_ << "_workspace_bytes(const int64_t* dims, size_t* bytes, char* err, size_t err_len) {\n"
    << "  try {\n" << dims_from() << "  *bytes = " << name_ << "::workspace_bytes(d);\n  return 0;\n"
    << "  } catch (const std::exception& e) {\n    return report(e, err, err_len);\n  }\n}\n"
    << "int " << name_ << "_output_dims(const int64_t* dims, int output, int64_t* out_dims, int* rank, char* err, size_t err_len) {\n"
    << "  try {\n" << dims_from() << "  if (output < 0) throw std::invalid_argument(\"negative output index\");\n"
    << "  *rank = " << name_ << "::output_dims(d, static_cast<size_t>(output), out_dims);\n  return 0;\n"
    << "  } catch (const std::exception& e) {\n    return report(e, err, err_len);\n  }\n}\n"
    << "int " << name_ << "_run(const int64_t* dims, const void* const* inputs, void* const* outputs, void* workspace,\n"
    << "    size_t workspace_bytes, char* err, size_t err_len) {\n  try {\n"
    << "  " << name_ << "::Inputs in;\n  " << name_ << "::Outputs out;\n  bind(dims, inputs, outputs, in, out);\n"
    << "  " << name_ << "::execute(in, out, workspace, workspace_bytes" << (has_dd_ ? ", false" : "") << ");\n  return 0;\n"
    << "  } catch (const std::exception& e) {\n    return report(e, err, err_len);\n  }\n}\n"
    << "int " << name_ << "_run_dims(const int64_t* dims, const void* const* inputs, void* const* outputs, int* out_ranks,\n"
    << "    int64_t* out_dims, void* workspace, size_t workspace_bytes, char* err, size_t err_len) {\n  try {\n"
    << "  if (!out_ranks || !out_dims) throw std::invalid_argument(\"" << name_ << ": run_dims: out_ranks or out_dims is null\");\n"
    << "  " << name_ << "::Inputs in;\n  " << name_ << "::Outputs out;\n  bind(dims, inputs, outputs, in, out);\n"
    << "  const auto& F = " << name_ << "::execute(in, out, workspace, workspace_bytes" << (has_dd_ ? ", true" : "") << ");\n"
    << "  for (size_t k = 0; k < " << name_ << "::kNumOutputs; ++k)\n"
    << "    out_ranks[k] = " << name_ << "::frame_dims(F, k, out_dims + k * QUIVER_AOT_MAX_RANK);\n  return 0;\n"
    << "  } catch (const std::exception& e) {\n    return report(e, err, err_len);\n  }\n}\n"
    << "int " << name_ << "_load_weights(const char* path, char* err, size_t err_len) {\n"
    << "  try {\n    " << name_ << "::load_weights(path);\n    return 0;\n"
    << "  } catch (const std::exception& e) {\n    return report(e, err, err_len);\n  }\n}\n}  // extern \"C\"\n";
  return c.str();
}

std::string Generator::weights() {
  std::ostringstream w;
  w << "// Generated by quiver compile: the constants of " << name_ << ", as exact literals.\n"
    << "#include <cstdint>\n#include <limits>\n\nnamespace " << name_ << "::W {\n\n";
  for (const auto& k : consts_)
    if (k.used) write_array(w, k);
  w << "\n}  // namespace " << name_ << "::W\n";
  return w.str();
}

// NAME.weights: the header (wf::Header, weights.inc), then the data layout_weights() made.
std::string Generator::weights_file() const {
  wf::Header h{};
  std::memcpy(h.magic, wf::kMagic, sizeof h.magic);
  h.version = wf::kVersion;
  h.header_bytes = wf::kHeaderBytes;
  h.data_bytes = blob_.size();
  h.checksum = checksum_;
  std::memcpy(h.sha256, info_.sha256.data(), std::min(info_.sha256.size(), sizeof h.sha256));
  std::memcpy(h.name, name_.data(), std::min(name_.size(), sizeof h.name - 1));
  return std::string(reinterpret_cast<const char*>(&h), sizeof h) + blob_;
}

std::string Generator::cmake() const {
  const std::string n = name_;
  std::string march = opt_.target == "native" ? "-march=native" : "-march=" + opt_.target;
  std::ostringstream m;
  m << "# Generated by quiver compile. Builds lib" << n << ".so (loadable by quiver's aot backend) and lib" << n
    << ".a;\n# usable with add_subdirectory(). Needs only a C++17 compiler.\n"
    << "cmake_minimum_required(VERSION 3.16)\nproject(" << n << " LANGUAGES CXX)\n\n"
    << "set(" << n << "_ARCH_FLAGS \"" << march << "\" CACHE STRING \"Instruction set the model is built for\")\n"
    << "add_library(" << n << "_objects OBJECT " << n << ".cpp" << (file_ ? "" : " " + n + "_weights.cpp") << ")\n"
    << "set_target_properties(" << n << "_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)\n"
    << "target_compile_features(" << n << "_objects PUBLIC cxx_std_17)\n"
    << "separate_arguments(_" << n << "_arch UNIX_COMMAND \"${" << n << "_ARCH_FLAGS}\")\n"
    << (repro_ ? "# Reproducible numerics: no contraction of a*b+c into fma (the code says fma where the engine does).\n" : "")
    << "set(" << n << "_FP_FLAGS \"" << (repro_ ? "-ffp-contract=off" : "") << "\")\n"
    << "separate_arguments(_" << n << "_fp UNIX_COMMAND \"${" << n << "_FP_FLAGS}\")\n"
    << "target_compile_options(" << n << "_objects PRIVATE -O3 -fno-math-errno -fno-trapping-math ${_" << n << "_arch} ${_" << n << "_fp})\n"
    << (file_ ? "\n" : "set_source_files_properties(" + n + "_weights.cpp PROPERTIES COMPILE_OPTIONS -O0)\n\n")
    << "add_library(" << n << " SHARED " << n << "_entry.cpp $<TARGET_OBJECTS:" << n << "_objects>)\n"
    << "add_library(" << n << "_static STATIC $<TARGET_OBJECTS:" << n << "_objects>)\n"
    << "set_target_properties(" << n << "_static PROPERTIES OUTPUT_NAME " << n << ")\n"
    << "foreach(_t " << n << " " << n << "_static)\n"
    << "  target_include_directories(${_t} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})\n"
    << "  target_compile_features(${_t} PUBLIC cxx_std_17)\nendforeach()\n";
  if (file_)
    m << "# The weights: " << n << ".weights, mapped at run time, looked for next to lib" << n << ".so by default\n"
      << "# (next to the program for the static library, or wherever " << n << "::load_weights(path) says).\n"
      << "add_custom_command(TARGET " << n << " POST_BUILD COMMAND ${CMAKE_COMMAND} -E copy_if_different\n"
      << "  ${CMAKE_CURRENT_SOURCE_DIR}/" << n << ".weights $<TARGET_FILE_DIR:" << n << ">)\n";
  return m.str();
}

CompileResult Generator::run(const fs::path& dir) {
  collect_dims();
  walk();
  layout_weights();
  const std::string hdr = header(), src = source(), wts = file_ ? weights_file() : weights(), cm = cmake();
  std::ostringstream entry;
  entry << "// Generated by quiver compile: the entry point of lib" << name_ << ".so for quiver's aot backend.\n"
        << "#include \"" << name_ << ".hpp\"\n\nextern \"C\" __attribute__((visibility(\"default\"))) const quiver_aot_api* "
        << "quiver_aot_entry(void) {\n  static const quiver_aot_api api = {QUIVER_AOT_ABI_VERSION, " << name_ << "_info, "
        << name_ << "_workspace_bytes, " << name_ << "_output_dims, " << name_ << "_run, " << name_
        << "_load_weights, " << name_ << "_run_dims};\n  return &api;\n}\n";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw_error(ErrorCode::InvalidArgument, "cannot create " + dir.string() + ": " + ec.message());
  CompileResult r;
  r.name = name_;
  r.dir = dir.string();
  r.steps = plan_.steps.size();
  r.dims = dims_;
  if (file_) r.weights_file = name_ + ".weights";
  for (const auto& k : consts_)
    if (k.used) r.weight_bytes += k.t->nbytes();
  const std::pair<std::string, const std::string*> files[] = {{name_ + ".hpp", &hdr},
                                                              {name_ + ".cpp", &src},
                                                              {file_ ? name_ + ".weights" : name_ + "_weights.cpp", &wts},
                                                              {"CMakeLists.txt", &cm}};
  for (const auto& [f, text] : files) {
    write_file(dir / f, *text);
    r.files.push_back(f);
  }
  write_file(dir / (name_ + "_entry.cpp"), entry.str());
  r.files.push_back(name_ + "_entry.cpp");
  return r;
}

}  // namespace

namespace {

// A tree-ensemble file as a plan of one emitted step: the forest's flat layout and walk
// (forest/codegen.hpp), input "input" [batch, features], outputs "prediction" and "margin" as the
// forest backend's model has them; the rest (API, C ABI, metadata, CMake) is the ONNX path's.
// Reproducible numerics: the forest loads as the engine's reproducible mode loads it (sums in tree
// order, float transforms through the engine's functions) and the generated code includes the rr runtime.
CompileResult compile_forest(const std::string& path, const std::string& out_dir, const CompileOptions& options,
                             const std::string& name, const std::string& id, bool reproducible) {
  LoadOptions lo;
  lo.name = name;
  lo.params = options.params;
  if (auto it = lo.params.find("interface"); it != lo.params.end() && it->second != "native")
    throw_error(ErrorCode::Unsupported, "quiver compile writes the native forest interface (input, prediction, margin); "
                "interface=" + it->second + " is not compiled", {name, "", "", path});
  auto fm = forest::ForestModel::load(path, lo);
  const forest::Forest& f = fm->forest();
  forest::ForestCode code = forest::emit_forest(f, "x0", "I0.d[0]", "y1", "y0");
  auto e = std::make_unique<onnx::EmittedStep>();
  const std::string npc = std::to_string(f.n_prediction_columns()), no = std::to_string(f.n_outputs());
  e->shape = "O0.r = 2;\nO0.d[0] = I0.d[0];\nO0.d[1] = " + npc + ";\nO1.r = 2;\nO1.d[0] = I0.d[0];\nO1.d[1] = " + no + ";\n";
  e->compute = code.compute;
  e->scratch = std::to_string(code.scratch_bytes);
  e->reads_values = {0};
  e->reads_data = {1};
  for (auto& t : code.consts) e->consts.push_back(std::make_shared<const Tensor>(std::move(t)));
  e->comment = f.format() + " tree ensemble, objective " + (f.objective().empty() ? "-" : f.objective());
  e->out_dtypes = {DType::F32, DType::F32};
  e->out_shapes = {std::vector<int64_t>{-1, f.n_prediction_columns()}, std::vector<int64_t>{-1, f.n_outputs()}};
  Plan plan;
  plan.model_name = fm->info().name;
  plan.target = "aot";
  plan.cpu_only = false;
  plan.num_slots = 2;
  plan.num_inputs = 1;
  Step st;
  st.placement = onnx::Placement::Device;
  st.device_kernel = std::move(e);
  st.inputs = {ValueRef{ValueRef::Input, 0}};
  st.outputs = {0, 1};
  st.view_out = {0, 0};
  st.label = "trees (" + f.format() + ")";
  st.op_type = "TreeEnsemble";
  plan.steps.push_back(std::move(st));
  plan.outputs = {ValueRef{ValueRef::Slot, 0}, ValueRef{ValueRef::Slot, 1}};
  Generator g(fm->info(), plan, id, options, fs::path(path).filename().string(), reproducible);
  return g.run(out_dir);
}

bool is_forest_file(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0) return false;
  std::ifstream in(path, std::ios::binary);
  std::string head(4096, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return forest::backend().accepts(path, head);
}

}  // namespace

CompileResult compile_model(const std::string& model_path, const std::string& out_dir, const CompileOptions& options) {
  const bool trees = is_forest_file(model_path);
  std::string name = options.name;
  if (name.empty()) {
    name = fs::path(model_path).filename().string();
    // model.onnx -> its folder's name; X.weights.xml.gz, X.json, X_model.txt -> X
    for (const char* suf : {".gz", ".xml", ".weights", ".json", ".ubj", ".txt", ".model", ".onnx"})
      if (name.size() > std::strlen(suf) && name.compare(name.size() - std::strlen(suf), std::string::npos, suf) == 0)
        name.resize(name.size() - std::strlen(suf));
    if (name == "model") name = fs::path(model_path).parent_path().filename().string();
  }
  const std::string id = ident(name);
  if (!options.name.empty() && id != options.name)
    throw_error(ErrorCode::InvalidArgument, "--name must be a C identifier (letters, digits, _): '" + options.name + "'");
  if (options.weights != "source" && options.weights != "file")
    throw_error(ErrorCode::InvalidArgument, "--weights must be source or file, not '" + options.weights + "'");
  if (options.target != "native" && options.target != "x86-64-v3" && options.target != "x86-64-v2")
    throw_error(ErrorCode::InvalidArgument, "--target must be native, x86-64-v3 or x86-64-v2, not '" + options.target + "'");
  bool reproducible = false;
  if (auto it = options.params.find("numerics"); it != options.params.end()) {
    if (it->second != "reproducible" && it->second != "default")
      throw_error(ErrorCode::InvalidArgument, "numerics must be default or reproducible, not '" + it->second + "'", {name});
    reproducible = it->second == "reproducible";
  }
  if (trees) return compile_forest(model_path, out_dir, options, name, id, reproducible);
  LoadOptions lo;
  lo.name = name;
  lo.params = options.params;
  onnx::CompileOptions co;
  co.fuse_transposed_gemm = false;
  co.fuse_edge_conv = true;
  auto model = onnx::compile_onnx_file(model_path, lo, co, emitter_target(reproducible));
  Generator g(model->info(), model->plan(), id, options, fs::path(model_path).filename().string(), reproducible);
  return g.run(out_dir);
}

}  // namespace quiver::aot
