// Graph compiler: topological order (node lists need not be sorted), outer-scope capture for
// subgraphs, kernel building, constant folding, fusions and liveness-based slot reuse.
#include "onnx/compiler.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "onnx/fusion.hpp"
#include "onnx/proto_io.hpp"
#include "quiver/core/shape.hpp"

namespace quiver::onnx {

namespace {

const ValueInfo kAbsent = [] {
  ValueInfo v;
  v.present = false;
  return v;
}();
const std::string kEmpty;

std::string node_label(const ::onnx::NodeProto& n) {
  return (n.name().empty() ? (n.output_size() ? n.output(0) : std::string("?")) : n.name()) + " (" + n.op_type() + ")";
}

// Names a subgraph reads but does not define (its outer-scope references), recursively.
void free_names(const ::onnx::GraphProto& g, std::set<std::string>& out) {
  std::unordered_set<std::string> defined;
  for (const auto& i : g.input()) defined.insert(i.name());
  for (const auto& i : g.initializer()) defined.insert(i.name());
  for (const auto& n : g.node())
    for (const auto& o : n.output()) defined.insert(o);
  auto use = [&](const std::string& name) {
    if (!name.empty() && !defined.count(name)) out.insert(name);
  };
  for (const auto& n : g.node()) {
    for (const auto& i : n.input()) use(i);
    for (const auto& a : n.attribute()) {
      std::set<std::string> inner;
      if (a.has_g()) free_names(a.g(), inner);
      for (const auto& sg : a.graphs()) free_names(sg, inner);
      for (const auto& x : inner) use(x);
    }
  }
  for (const auto& o : g.output()) use(o.name());
}

std::optional<std::vector<int64_t>> shape_of(const ::onnx::ValueInfoProto& vi) {
  if (!vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) return std::nullopt;
  std::vector<int64_t> d;
  for (const auto& dim : vi.type().tensor_type().shape().dim())
    d.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  return d;
}

struct ValueRec {
  ValueInfo info;
  ValueRef ref;
  int def_step = -1;     // step that defines a slot value
  int last_use = -1;     // last step reading it (INT_MAX for graph outputs)
  int alias_of = -1;     // value id whose memory this value views
  bool view = false;
  bool on_host = true;   // device targets: the data is on the host when later steps start
};

}  // namespace

class BuildCtx;

class GraphCompiler {
 public:
  GraphCompiler(const ::onnx::GraphProto& g, const CompileEnv& env, GraphCompiler* parent)
      : g_(g), env_(env), parent_(parent), plan_(std::make_shared<Plan>()) {
    plan_->model_name = env.model_name;
  }

  std::shared_ptr<Plan> compile(const std::vector<ValueInfo>& input_infos);
  // Outer-scope values this (sub)graph captured, in input order after the formal inputs.
  const std::vector<std::string>& captured() const { return captured_; }

  // Look up a name visible from this graph; may capture it from an enclosing graph. -1 if unknown.
  int lookup(const std::string& name);

 private:
  friend class BuildCtx;
  int add_value(const std::string& name, ValueRec rec) {
    int id = static_cast<int>(values_.size());
    values_.push_back(std::move(rec));
    if (!name.empty()) names_[name] = id;
    value_names_.push_back(name);
    return id;
  }
  int add_constant(const std::string& name, std::shared_ptr<const Tensor> t) {
    ValueRec r;
    r.info.dtype = t->dtype();
    r.info.shape = t->dims();
    r.info.constant = t;
    r.ref = {ValueRef::Const, static_cast<uint32_t>(plan_->constants.size())};
    plan_->constants.push_back(std::move(t));
    return add_value(name, std::move(r));
  }
  std::vector<const ::onnx::NodeProto*> topo_sort(const std::vector<const ::onnx::NodeProto*>& nodes);
  void build_node(const ::onnx::NodeProto& node);
  void select_kernel(const OpDef& def, BuildCtx& ctx, const std::vector<int>& in_ids, const std::vector<int>& outs,
                     Step& step);
  // Subgraph bodies run on the CPU executor, inside their step's CPU kernel: compiled for the CPU.
  const CompileEnv& subgraph_env();
  void assign_slots();
  [[noreturn]] void fail(const std::string& msg, const std::string& node = "", const std::string& tensor = "",
                         ErrorCode code = ErrorCode::InvalidArgument) const {
    throw Error(code, msg, {env_.model_name, node, tensor});
  }

  const ::onnx::GraphProto& g_;
  const CompileEnv& env_;
  GraphCompiler* parent_;
  std::shared_ptr<Plan> plan_;
  std::vector<ValueRec> values_;
  std::vector<std::string> value_names_;
  std::unordered_map<std::string, int> names_;
  size_t num_formal_ = 0;
  std::vector<std::string> captured_;
  std::vector<std::vector<int>> step_out_values_;  // value ids per step output
  std::vector<std::vector<int>> step_in_values_;   // value ids per step input (-1 absent)
  FusedGraph fused_;                                // node list after fusion rewrites
  std::unique_ptr<CompileEnv> sub_env_;
};

const CompileEnv& GraphCompiler::subgraph_env() {
  if (env_.target.cpu_only()) return env_;
  if (!sub_env_) {
    sub_env_ = std::make_unique<CompileEnv>(env_);
    sub_env_->target = Target{};
    sub_env_->options.fuse_transposed_gemm = false;  // as the enclosing device plan
  }
  return *sub_env_;
}

int GraphCompiler::lookup(const std::string& name) {
  auto it = names_.find(name);
  if (it != names_.end()) return it->second;
  if (!parent_) return -1;
  int pid = parent_->lookup(name);
  if (pid < 0) return -1;
  const ValueRec& p = parent_->values_[pid];
  if (p.info.constant) return add_constant(name, p.info.constant);  // constants need no capture
  ValueRec r;
  r.info = p.info;
  r.ref = {ValueRef::Input, static_cast<uint32_t>(num_formal_ + captured_.size())};
  captured_.push_back(name);
  return add_value(name, std::move(r));
}

class BuildCtx final : public BuildContext {
 public:
  BuildCtx(GraphCompiler& gc, const ::onnx::NodeProto& node, std::vector<int>& in_ids)
      : gc_(gc), node_(node), attrs_(&node), in_ids_(in_ids), label_(node.name()) {
    if (label_.empty() && node.output_size()) label_ = node.output(0);
    const std::string& dom = node.domain() == "ai.onnx" ? kEmpty : node.domain();
    auto it = gc.env_.opsets.find(dom);
    opset_ = it != gc.env_.opsets.end() ? static_cast<int>(it->second) : 21;
    out_.resize(node.output_size());
    out_const_.resize(node.output_size());
    out_set_.resize(node.output_size(), false);
  }
  const std::string& op_type() const override { return node_.op_type(); }
  const std::string& domain() const override { return node_.domain(); }
  const std::string& node_name() const override { return label_; }
  const std::string& model_name() const override { return gc_.env_.model_name; }
  int opset() const override { return opset_; }
  const Target& target() const override { return gc_.env_.target; }
  const Attributes& attrs() const override { return attrs_; }
  size_t num_inputs() const override { return static_cast<size_t>(node_.input_size()); }
  const ValueInfo& input(size_t i) const override {
    if (i >= in_ids_.size() || in_ids_[i] < 0) return kAbsent;
    return gc_.values_[in_ids_[i]].info;
  }
  const std::string& input_name(size_t i) const override {
    return i < static_cast<size_t>(node_.input_size()) ? node_.input(static_cast<int>(i)) : kEmpty;
  }
  size_t num_outputs() const override { return static_cast<size_t>(node_.output_size()); }
  const std::string& output_name(size_t i) const override {
    return i < static_cast<size_t>(node_.output_size()) ? node_.output(static_cast<int>(i)) : kEmpty;
  }
  void set_output(size_t i, DType dtype, std::optional<std::vector<int64_t>> shape) override {
    if (i >= out_.size()) return;  // optional output the model does not ask for
    out_[i].dtype = dtype;
    out_[i].shape = std::move(shape);
    out_set_[i] = true;
  }
  void set_output_constant(size_t i, Tensor value) override {
    if (i >= out_.size()) return;
    out_[i].dtype = value.dtype();
    out_[i].shape = value.dims();
    out_const_[i] = std::make_shared<const Tensor>(std::move(value));
    out_set_[i] = true;
  }
  Subgraph compile_subgraph(const std::string& attr, const std::vector<ValueInfo>& formal) override {
    const auto* a = attrs_.find(attr);
    if (!a || !a->has_g()) fail("graph attribute '" + attr + "' is missing");
    GraphCompiler child(a->g(), gc_.subgraph_env(), &gc_);
    Subgraph sg;
    try {
      sg.plan = child.compile(formal);
    } catch (const Error& e) {
      throw e.with_context({gc_.env_.model_name, label_ + " (" + op_type() + ")/" + attr});
    }
    for (const auto& i : a->g().input()) sg.input_names.push_back(i.name());
    for (const auto& o : a->g().output()) sg.output_names.push_back(o.name());
    for (const auto& name : child.captured()) {
      int id = gc_.lookup(name);
      if (id < 0) fail("subgraph '" + attr + "' reads unknown value", name);
      in_ids_.push_back(id);
      sg.outer_inputs.push_back(in_ids_.size() - 1);
    }
    subplans_.push_back(sg.plan);
    return sg;
  }

  std::vector<ValueInfo> out_;
  std::vector<std::shared_ptr<const Tensor>> out_const_;
  std::vector<bool> out_set_;
  std::vector<std::shared_ptr<const Plan>> subplans_;

 private:
  GraphCompiler& gc_;
  const ::onnx::NodeProto& node_;
  Attributes attrs_;
  std::vector<int>& in_ids_;
  std::string label_;
  int opset_;
};

std::vector<const ::onnx::NodeProto*> GraphCompiler::topo_sort(const std::vector<const ::onnx::NodeProto*>& nodes) {
  // Producer of each name within this graph.
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i]->output()) {
      if (o.empty()) continue;
      if (!producer.emplace(o, i).second)
        fail("value is produced by two nodes", node_label(*nodes[i]), o);
    }
  std::vector<std::vector<size_t>> users(nodes.size());
  std::vector<size_t> pending(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::set<std::string> deps(nodes[i]->input().begin(), nodes[i]->input().end());
    for (const auto& a : nodes[i]->attribute()) {
      if (a.has_g()) free_names(a.g(), deps);
      for (const auto& sg : a.graphs()) free_names(sg, deps);
    }
    for (const auto& d : deps) {
      if (d.empty()) continue;
      auto it = producer.find(d);
      if (it != producer.end()) {
        if (it->second == i) fail("node reads its own output", node_label(*nodes[i]), d);
        users[it->second].push_back(i);
        ++pending[i];
      } else if (!names_.count(d) && lookup(d) < 0) {
        fail("input is not produced by any node, initializer or graph input", node_label(*nodes[i]), d,
             ErrorCode::Parse);
      }
    }
  }
  // Kahn's algorithm, stable: among ready nodes keep the original order.
  std::set<size_t> ready;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!pending[i]) ready.insert(i);
  std::vector<const ::onnx::NodeProto*> order;
  while (!ready.empty()) {
    size_t i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(nodes[i]);
    for (size_t u : users[i])
      if (--pending[u] == 0) ready.insert(u);
  }
  if (order.size() != nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i)
      if (pending[i]) fail("graph has a cycle", node_label(*nodes[i]), "", ErrorCode::Parse);
  }
  return order;
}

void GraphCompiler::build_node(const ::onnx::NodeProto& node) {
  const std::string label = node_label(node);
  const OpDef* def = OpRegistry::instance().find(node.domain(), node.op_type());
  if (!def)
    fail("unsupported operator '" + (node.domain().empty() ? "" : node.domain() + "::") + node.op_type() + "'",
         label, "", ErrorCode::Unsupported);
  // Reproducible numerics: only ops that say how their bits stay fixed (OpDef::repro) are built.
  if (env_.target.reproducible() && def->repro == Repro::None)
    fail("operator '" + (node.domain().empty() ? "" : node.domain() + "::") + node.op_type() +
             "' has no reproducible kernel (numerics=reproducible); load with numerics=default",
         label, "", ErrorCode::Unsupported);
  std::vector<int> in_ids;
  for (const auto& name : node.input()) {
    if (name.empty()) { in_ids.push_back(-1); continue; }
    int id = lookup(name);
    if (id < 0) fail("unknown input value", label, name, ErrorCode::Parse);
    in_ids.push_back(id);
  }
  BuildCtx ctx(*this, node, in_ids);
  std::unique_ptr<Kernel> kernel;
  try {
    kernel = def->build(ctx);
  } catch (const Error& e) {
    throw e.with_context({env_.model_name, label});
  }
  for (size_t i = 0; i < ctx.out_.size(); ++i) {
    if (node.output(static_cast<int>(i)).empty()) continue;
    if (!ctx.out_set_[i]) fail("operator did not declare output " + std::to_string(i), label, node.output(static_cast<int>(i)), ErrorCode::Internal);
  }
  // All outputs constant (declared by the builder): no step.
  bool all_const = true;
  for (size_t i = 0; i < ctx.out_.size(); ++i)
    if (!node.output(static_cast<int>(i)).empty() && !ctx.out_const_[i]) all_const = false;
  if (all_const) {
    for (size_t i = 0; i < ctx.out_.size(); ++i)
      if (!node.output(static_cast<int>(i)).empty()) add_constant(node.output(static_cast<int>(i)), ctx.out_const_[i]);
    return;
  }
  if (!kernel) fail("operator returned no kernel for non-constant outputs", label, "", ErrorCode::Internal);
  // Constant folding: every present input known, deterministic op, no subgraph.
  bool foldable = env_.options.fold_constants && def->foldable && ctx.subplans_.empty() && !in_ids.empty();
  for (int id : in_ids)
    if (id >= 0 && !values_[id].info.constant) foldable = false;
  if (foldable) {
    Plan tmp;
    tmp.model_name = env_.model_name;
    Step st;
    st.kernel = std::move(kernel);
    st.label = label;
    for (int id : in_ids) {
      if (id < 0) { st.inputs.push_back({}); continue; }
      st.inputs.push_back({ValueRef::Const, static_cast<uint32_t>(tmp.constants.size())});
      tmp.constants.push_back(values_[id].info.constant);
    }
    for (int i = 0; i < node.output_size(); ++i) {
      st.outputs.push_back(node.output(i).empty() ? -1 : i);
      st.view_out.push_back(0);
    }
    tmp.num_slots = static_cast<size_t>(node.output_size());
    tmp.steps.push_back(std::move(st));
    auto state = tmp.make_state();
    tmp.run({}, *state);
    for (int i = 0; i < node.output_size(); ++i) {
      if (node.output(i).empty()) continue;
      Tensor& t = state->slots[static_cast<size_t>(i)];
      add_constant(node.output(i), std::make_shared<const Tensor>(t.is_view() ? t.clone() : std::move(t)));
    }
    return;
  }
  Step step;
  step.kernel = std::move(kernel);
  step.label = label;
  step.op_type = (node.domain().empty() || node.domain() == "ai.onnx" ? "" : node.domain() + "::") + node.op_type() +
                 (node.op_type() == "Conv" || node.op_type() == "MatMul" || node.op_type() == "Gemm"
                      ? (Attributes(&node).has("_quiver_act") ? "+" + Attributes(&node).get_string("_quiver_act", "") : "")
                      : "");
  const int step_index = static_cast<int>(plan_->steps.size());
  for (int id : in_ids) {
    step.inputs.push_back(id < 0 ? ValueRef{} : values_[id].ref);
    if (id >= 0) values_[id].last_use = std::max(values_[id].last_use, step_index);
  }
  std::vector<int> outs;
  for (size_t i = 0; i < ctx.out_.size(); ++i) {
    const std::string& name = node.output(static_cast<int>(i));
    if (name.empty()) { outs.push_back(-1); continue; }
    if (names_.count(name)) fail("value is defined twice", label, name, ErrorCode::Parse);
    ValueRec r;
    r.info = ctx.out_[i];
    r.info.constant.reset();
    r.def_step = step_index;
    r.ref = {ValueRef::Slot, 0};  // slot assigned later
    if (i == 0 && def->aliases_input0 && !in_ids.empty() && in_ids[0] >= 0) {
      r.view = true;
      if (values_[in_ids[0]].ref.kind == ValueRef::Slot) r.alias_of = in_ids[0];
    }
    outs.push_back(add_value(name, std::move(r)));
  }
  step.first_sub = static_cast<uint32_t>(plan_->subplans.size());
  step.num_subs = static_cast<uint32_t>(ctx.subplans_.size());
  for (auto& sp : ctx.subplans_) plan_->subplans.push_back(sp);
  select_kernel(*def, ctx, in_ids, outs, step);
  step_in_values_.push_back(in_ids);
  step_out_values_.push_back(outs);
  plan_->steps.push_back(std::move(step));
}

// The one place a step's kernel is chosen for the plan's target (onnx/target.hpp). On the CPU target
// it is the op's CPU kernel, already built. A device target's library is asked once; its answer, and
// where values then live (the executor moves data only where a consumer needs it), are plan data.
void GraphCompiler::select_kernel(const OpDef& def, BuildCtx& ctx, const std::vector<int>& in_ids,
                                  const std::vector<int>& outs, Step& step) {
  const Target& target = env_.target;
  if (target.cpu_only()) return;
  std::vector<uint8_t> wanted(outs.size()), on_host(in_ids.size(), 1);
  for (size_t i = 0; i < outs.size(); ++i) wanted[i] = outs[i] >= 0;
  for (size_t i = 0; i < in_ids.size(); ++i) on_host[i] = in_ids[i] < 0 || values_[in_ids[i]].on_host;
  const StepQuery query{ctx, ctx.out_, wanted, on_host, def.reads_dims_only || def.aliases_input0,
                        !ctx.subplans_.empty()};
  KernelChoice choice = target.device->choose(query);
  step.placement = choice.placement;
  step.why_cpu = std::move(choice.why);
  auto set_inputs_on_host = [&](size_t from, const std::vector<uint8_t>* only) {
    for (size_t i = from; i < in_ids.size(); ++i)
      if (in_ids[i] >= 0 && (!only || (i < only->size() && (*only)[i]))) values_[in_ids[i]].on_host = true;
  };
  switch (choice.placement) {
    case Placement::Device:
      if (!choice.kernel)
        fail("target '" + target.name + "' placed the step on the device without a kernel", step.label, "",
             ErrorCode::Internal);
      step.device_kernel = std::move(choice.kernel);
      step.kernel.reset();  // never run: drop its CPU-side state (packed weights)
      set_inputs_on_host(0, &choice.host_reads);
      for (int v : outs)
        if (v >= 0) values_[v].on_host = false;
      break;
    case Placement::CpuDims:
      set_inputs_on_host(1, nullptr);
      for (size_t i = 0; i < outs.size(); ++i)
        if (outs[i] >= 0)
          values_[outs[i]].on_host = i == 0 && def.aliases_input0 && in_ids[0] >= 0 ? values_[in_ids[0]].on_host : true;
      break;
    case Placement::Cpu:
      set_inputs_on_host(0, nullptr);
      for (int v : outs)
        if (v >= 0) values_[v].on_host = true;
      break;
  }
}

void GraphCompiler::assign_slots() {
  // Alias groups: a view keeps the memory it views alive, transitively.
  auto root = [&](int v) {
    while (values_[v].alias_of >= 0) v = values_[v].alias_of;
    return v;
  };
  std::vector<int> group_end(values_.size(), -1);
  for (size_t v = 0; v < values_.size(); ++v) {
    if (values_[v].ref.kind != ValueRef::Slot) continue;
    int end = values_[v].last_use < 0 ? values_[v].def_step : values_[v].last_use;
    int r = root(static_cast<int>(v));
    group_end[r] = std::max(group_end[r], end);
  }
  // Greedy: walk steps; free slots whose group ended before this step.
  std::vector<int32_t> free_slots;
  std::vector<std::vector<int32_t>> release_at(plan_->steps.size() + 1);
  int32_t next_slot = 0;
  for (size_t s = 0; s < plan_->steps.size(); ++s) {
    for (int32_t slot : release_at[s]) free_slots.push_back(slot);
    Step& step = plan_->steps[s];
    step.outputs.clear();
    step.view_out.clear();
    for (int v : step_out_values_[s]) {
      if (v < 0) { step.outputs.push_back(-1); step.view_out.push_back(0); continue; }
      ValueRec& rec = values_[v];
      int32_t slot;
      if (rec.view || free_slots.empty()) {
        slot = next_slot++;  // views get private slots: they hold no storage of their own
      } else {
        slot = free_slots.back();
        free_slots.pop_back();
      }
      rec.ref.index = static_cast<uint32_t>(slot);
      step.outputs.push_back(slot);
      step.view_out.push_back(rec.view ? 1 : 0);
      if (!rec.view && rec.alias_of < 0) {
        int end = group_end[v];
        if (end != std::numeric_limits<int>::max()) release_at[static_cast<size_t>(end) + 1].push_back(slot);
      }
    }
  }
  plan_->num_slots = static_cast<size_t>(next_slot);
  // Patch input refs now that slots are known.
  for (size_t s = 0; s < plan_->steps.size(); ++s)
    for (size_t i = 0; i < step_in_values_[s].size(); ++i) {
      int v = step_in_values_[s][i];
      if (v >= 0) plan_->steps[s].inputs[i] = values_[v].ref;
    }
}

std::shared_ptr<Plan> GraphCompiler::compile(const std::vector<ValueInfo>& input_infos) {
  // Initializers first: an initializer that is also listed as an input (old IR) is a constant.
  std::unordered_set<std::string> init_names;
  for (const auto& init : g_.initializer()) {
    init_names.insert(init.name());
    add_constant(init.name(), std::make_shared<const Tensor>(tensor_from_proto(init, env_.base_dir, init.name())));
  }
  for (const auto& sinit : g_.sparse_initializer())
    fail("sparse initializers are not supported", "", sinit.values().name(), ErrorCode::Unsupported);
  size_t k = 0;
  for (const auto& in : g_.input()) {
    if (init_names.count(in.name())) continue;
    ValueRec r;
    if (k < input_infos.size()) r.info = input_infos[k];
    if (r.info.dtype == DType::Undefined && in.type().has_tensor_type()) {
      auto dt = dtype_from_onnx(in.type().tensor_type().elem_type());
      if (dt) r.info.dtype = *dt;
    }
    if (!r.info.shape) r.info.shape = shape_of(in);
    r.ref = {ValueRef::Input, static_cast<uint32_t>(k)};
    add_value(in.name(), std::move(r));
    ++k;
  }
  num_formal_ = k;
  plan_->num_inputs = k;

  // Reading a transposed operand inside Gemm is a CPU kernel's trick: not for device targets.
  fused_ = fuse_graph(g_, env_.options.fuse, [this](const std::string& n) -> std::shared_ptr<const Tensor> {
    int id = names_.count(n) ? names_[n] : -1;
    return id >= 0 ? values_[id].info.constant : nullptr;
  }, env_.options.fuse_transposed_gemm && env_.target.cpu_only(), !env_.target.reproducible());
  for (auto& [name, t] : fused_.new_constants) add_constant(name, t);

  std::vector<const ::onnx::NodeProto*> nodes;
  for (const auto* n : fused_.nodes) nodes.push_back(n);
  for (const auto* n : topo_sort(nodes)) build_node(*n);

  for (const auto& out : g_.output()) {
    int id = lookup(out.name());
    if (id < 0) fail("graph output is not produced by any node", "", out.name(), ErrorCode::Parse);
    values_[id].last_use = std::numeric_limits<int>::max();
    plan_->outputs.push_back({});  // patched below
  }
  assign_slots();
  for (int i = 0; i < g_.output_size(); ++i) {
    const ValueRec& v = values_[lookup(g_.output(i).name())];
    plan_->outputs[i] = v.ref;
    plan_->output_shapes.push_back(v.info.shape);
  }
  plan_->num_inputs = num_formal_ + captured_.size();
  plan_->target = env_.target.name;
  plan_->cpu_only = std::none_of(plan_->steps.begin(), plan_->steps.end(),
                                 [](const Step& s) { return s.placement == Placement::Device; });
  return plan_;
}

std::shared_ptr<const Plan> compile_graph(const ::onnx::GraphProto& graph, const CompileEnv& env,
                                          const std::vector<ValueInfo>& input_infos) {
  GraphCompiler gc(graph, env, nullptr);
  return gc.compile(input_infos);
}

static void collect_unsupported(const ::onnx::GraphProto& g, bool with_nodes, std::vector<std::string>& out,
                                std::set<std::string>& seen) {
  for (const auto& n : g.node()) {
    if (!OpRegistry::instance().find(n.domain(), n.op_type())) {
      std::string key = (n.domain().empty() || n.domain() == "ai.onnx" ? "" : n.domain() + "::") + n.op_type();
      if (seen.insert(key).second) out.push_back(with_nodes ? key + " (node '" + node_label(n) + "')" : key);
    }
    for (const auto& a : n.attribute()) {
      if (a.has_g()) collect_unsupported(a.g(), with_nodes, out, seen);
      for (const auto& sg : a.graphs()) collect_unsupported(sg, with_nodes, out, seen);
    }
  }
}

std::vector<std::string> find_unsupported(const ::onnx::GraphProto& graph, bool with_nodes) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  collect_unsupported(graph, with_nodes, out, seen);
  return out;
}

}  // namespace quiver::onnx
