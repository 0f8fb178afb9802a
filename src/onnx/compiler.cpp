// Graph compiler: topological order (node lists need not be sorted), outer-scope capture for
// subgraphs, kernel building, constant folding, fusions and liveness-based slot reuse.
//
// Shape values: the small integer tensors a graph computes from dims (Shape -> Gather -> Concat ->
// Reshape ..., exporters' `expand(-1)` and `squeeze(dim)` patterns) are tracked element by element,
// each known where it reads only static dims. A fully known one is a constant (so `Equal(Shape(x)[1], 1)`
// folds when dim 1 is static), and a partly known one gives Expand / Reshape / ConstantOfShape the
// static dims it fixes. An If whose condition is constant is replaced by its chosen branch's nodes.
#include "onnx/compiler.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "onnx/fusion.hpp"
#include "onnx/ops/slice.hpp"
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
  // A name this graph or an enclosing one defines (without capturing it).
  bool visible(const std::string& name) const { return names_.count(name) || (parent_ && parent_->visible(name)); }
  // If with a constant condition: builds the chosen branch's nodes here; false when it cannot.
  bool inline_if(const ::onnx::NodeProto& node);
  // Shape values (see the top of the file): element-wise known values of small integer tensors.
  using Partial = std::vector<std::optional<int64_t>>;
  std::optional<Partial> partial_of(int id) const;
  std::optional<Partial> partial_out(const ::onnx::NodeProto& node, const std::vector<int>& in_ids, int opset) const;
  void refine_dims(const ::onnx::NodeProto& node, const std::vector<int>& in_ids, ValueInfo& out) const;
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
  std::unordered_map<int, Partial> partial_;       // shape values that are not constants, by value id
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

bool GraphCompiler::inline_if(const ::onnx::NodeProto& node) {
  const int cid = node.input_size() == 1 ? lookup(node.input(0)) : -1;
  if (cid < 0 || !values_[cid].info.constant || values_[cid].info.constant->numel() != 1) return false;
  const Tensor& c = *values_[cid].info.constant;
  bool cond = false;
  if (c.dtype() == DType::Bool) cond = c.data<bool>()[0];
  else if (c.dtype() == DType::I64) cond = c.data<int64_t>()[0] != 0;
  else if (c.dtype() == DType::I32) cond = c.data<int32_t>()[0] != 0;
  else return false;
  const ::onnx::GraphProto* branch = nullptr;
  for (const auto& a : node.attribute())
    if (a.name() == (cond ? "then_branch" : "else_branch") && a.has_g()) branch = &a.g();
  if (!branch || branch->input_size() != 0 || branch->output_size() < node.output_size() ||
      branch->sparse_initializer_size() != 0)
    return false;
  // The branch's names join this graph: none may shadow a visible one (ONNX forbids it; stay safe).
  for (const auto& init : branch->initializer())
    if (visible(init.name())) return false;
  for (const auto& n : branch->node())
    for (const auto& o : n.output())
      if (!o.empty() && visible(o)) return false;
  for (const auto& init : branch->initializer())
    add_constant(init.name(), std::make_shared<const Tensor>(tensor_from_proto(init, env_.base_dir, init.name())));
  std::vector<const ::onnx::NodeProto*> nodes;
  for (const auto& n : branch->node()) nodes.push_back(&n);
  for (const auto* n : topo_sort(nodes)) build_node(*n);
  for (int i = 0; i < node.output_size(); ++i) {
    if (node.output(i).empty()) continue;
    const int id = lookup(branch->output(i).name());
    if (id < 0) fail("branch output is not produced", node_label(node), branch->output(i).name(), ErrorCode::Parse);
    if (names_.count(node.output(i))) fail("value is defined twice", node_label(node), node.output(i), ErrorCode::Parse);
    names_[node.output(i)] = id;
  }
  return true;
}

std::optional<GraphCompiler::Partial> GraphCompiler::partial_of(int id) const {
  if (id < 0) return std::nullopt;
  if (const auto& t = values_[id].info.constant) {
    if (t->numel() > 64) return std::nullopt;
    Partial p;
    for (int64_t i = 0; i < t->numel(); ++i) {
      if (t->dtype() == DType::I64) p.push_back(t->data<int64_t>()[i]);
      else if (t->dtype() == DType::I32) p.push_back(t->data<int32_t>()[i]);
      else if (t->dtype() == DType::Bool) p.push_back(t->data<bool>()[i] ? 1 : 0);
      else return std::nullopt;
    }
    return p;
  }
  auto it = partial_.find(id);
  if (it == partial_.end()) return std::nullopt;
  return it->second;
}

std::optional<GraphCompiler::Partial> GraphCompiler::partial_out(const ::onnx::NodeProto& node, const std::vector<int>& in_ids,
                                                                 int opset) const {
  if (!node.domain().empty() && node.domain() != "ai.onnx") return std::nullopt;
  const std::string& op = node.op_type();
  const Attributes at(&node);
  auto in = [&](size_t i) { return i < in_ids.size() ? partial_of(in_ids[i]) : std::nullopt; };
  auto rank = [&](size_t i) -> int64_t {
    if (i >= in_ids.size() || in_ids[i] < 0 || !values_[in_ids[i]].info.shape) return -1;
    return static_cast<int64_t>(values_[in_ids[i]].info.shape->size());
  };
  auto ints = [&](size_t i) -> std::optional<std::vector<int64_t>> {
    const auto p = in(i);
    if (!p || i >= in_ids.size() || !values_[in_ids[i]].info.constant) return std::nullopt;
    std::vector<int64_t> v;
    for (const auto& x : *p) v.push_back(*x);
    return v;
  };
  if (op == "Shape") {
    const int64_t r = rank(0);
    if (r < 0) return std::nullopt;
    int64_t st = at.get_int("start", 0), en = at.get_int("end", r);
    if (st < 0) st += r;
    if (en < 0) en += r;
    st = std::clamp<int64_t>(st, 0, r);
    en = std::clamp<int64_t>(en, 0, r);
    Partial p;
    for (int64_t i = st; i < en; ++i) {
      const int64_t d = (*values_[in_ids[0]].info.shape)[static_cast<size_t>(i)];
      p.push_back(d >= 0 ? std::optional<int64_t>(d) : std::nullopt);
    }
    return p;
  }
  if (op == "Identity" || op == "Unsqueeze" || op == "Squeeze" || op == "Reshape" || op == "Flatten") return in(0);
  if (op == "Cast") {
    const auto p = in(0);
    const int64_t to = at.get_int("to", 0);
    if (!p || (to != ::onnx::TensorProto::INT64 && to != ::onnx::TensorProto::INT32 && to != ::onnx::TensorProto::BOOL))
      return std::nullopt;
    Partial r = *p;
    for (auto& x : r)
      if (x && to == ::onnx::TensorProto::BOOL) x = *x != 0 ? 1 : 0;
      else if (x && to == ::onnx::TensorProto::INT32 && (*x < INT32_MIN || *x > INT32_MAX)) x.reset();
    return r;
  }
  if (op == "Concat") {
    const int64_t axis = at.get_int("axis", 0);
    if (axis != 0 && axis != -1) return std::nullopt;
    Partial r;
    for (size_t i = 0; i < in_ids.size(); ++i) {
      const auto p = in(i);
      if (!p || rank(i) != 1) return std::nullopt;
      r.insert(r.end(), p->begin(), p->end());
    }
    return r;
  }
  if (op == "Gather") {
    const auto p = in(0);
    const auto idx = ints(1);
    if (!p || !idx || rank(0) != 1 || at.get_int("axis", 0) != 0) return std::nullopt;
    Partial r;
    const auto n = static_cast<int64_t>(p->size());
    for (int64_t k : *idx) {
      if (k < 0) k += n;
      if (k < 0 || k >= n) return std::nullopt;
      r.push_back((*p)[static_cast<size_t>(k)]);
    }
    return r;
  }
  if (op == "Slice" && opset >= 10) {
    const auto p = in(0);
    const auto st = ints(1), en = ints(2);
    if (!p || rank(0) != 1 || !st || !en || st->size() != 1 || en->size() != 1) return std::nullopt;
    if (in_ids.size() > 3 && in_ids[3] >= 0) {
      const auto ax = ints(3);
      if (!ax || ax->size() != 1 || ((*ax)[0] != 0 && (*ax)[0] != -1)) return std::nullopt;
    }
    int64_t step = 1;
    if (in_ids.size() > 4 && in_ids[4] >= 0) {
      const auto sp = ints(4);
      if (!sp || sp->size() != 1 || (*sp)[0] == 0) return std::nullopt;
      step = (*sp)[0];
    }
    const SliceAxis sa = slice_axis(static_cast<int64_t>(p->size()), (*st)[0], (*en)[0], step);
    Partial r;
    for (int64_t k = 0; k < sa.count; ++k) r.push_back((*p)[static_cast<size_t>(sa.start + k * step)]);
    return r;
  }
  // Element-wise on 0-D / 1-D values (numpy broadcasting of a single element).
  const bool where = op == "Where";
  if (!(where || op == "Equal" || op == "Add" || op == "Sub" || op == "Mul")) return std::nullopt;
  const size_t nin = where ? 3 : 2;
  if (in_ids.size() != nin) return std::nullopt;
  std::vector<Partial> a;
  size_t n = 1;
  for (size_t i = 0; i < nin; ++i) {
    auto p = in(i);
    if (!p || rank(i) > 1) return std::nullopt;
    if (p->size() != 1) {
      if (n != 1 && n != p->size()) return std::nullopt;
      n = p->size();
    }
    a.push_back(std::move(*p));
  }
  Partial r(n);
  for (size_t k = 0; k < n; ++k) {
    auto el = [&](size_t i) { return a[i].size() == 1 ? a[i][0] : a[i][k]; };
    if (where) {
      if (el(0)) r[k] = *el(0) ? el(1) : el(2);
      continue;
    }
    const auto x = el(0), y = el(1);
    if (!x || !y) continue;
    int64_t v = 0;
    if (op == "Equal") v = *x == *y ? 1 : 0;
    else if (op == "Add" ? __builtin_add_overflow(*x, *y, &v)
                         : op == "Sub" ? __builtin_sub_overflow(*x, *y, &v) : __builtin_mul_overflow(*x, *y, &v))
      continue;
    r[k] = v;
  }
  return r;
}

void GraphCompiler::refine_dims(const ::onnx::NodeProto& node, const std::vector<int>& in_ids, ValueInfo& out) const {
  if (!node.domain().empty() && node.domain() != "ai.onnx") return;
  const std::string& op = node.op_type();
  const size_t si = op == "ConstantOfShape" ? 0 : 1;
  if ((op != "Expand" && op != "Reshape" && op != "ConstantOfShape") || si >= in_ids.size()) return;
  const auto s = partial_of(in_ids[si]);
  if (!s) return;
  const auto& ish = in_ids[0] >= 0 ? values_[in_ids[0]].info.shape : std::nullopt;
  std::vector<int64_t> d;
  if (op == "ConstantOfShape") {
    for (const auto& v : *s) d.push_back(v && *v >= 0 ? *v : -1);
  } else if (op == "Reshape") {
    const bool allowzero = Attributes(&node).get_int("allowzero", 0) != 0;
    for (size_t i = 0; i < s->size(); ++i) {
      const auto& v = (*s)[i];
      if (v && *v > 0) d.push_back(*v);
      else if (v && *v == 0 && !allowzero && ish && i < ish->size()) d.push_back((*ish)[i]);
      else d.push_back(-1);
    }
  } else {  // Expand: numpy broadcasting of the input's dims with the shape's values
    if (!ish) return;
    const size_t r = std::max(ish->size(), s->size());
    for (size_t i = 0; i < r; ++i) {
      const std::optional<int64_t> sv = i + s->size() >= r ? (*s)[i + s->size() - r] : std::optional<int64_t>(1);
      const int64_t iv = i + ish->size() >= r ? (*ish)[i + ish->size() - r] : 1;
      if (sv && *sv == 1) d.push_back(iv);
      else if (iv == 1 || iv < 0) d.push_back(sv ? *sv : -1);
      else d.push_back(iv);  // a valid shape value is 1 or this dim
    }
  }
  if (!out.shape) out.shape = d;
  else if (out.shape->size() == d.size())
    for (size_t i = 0; i < d.size(); ++i)
      if ((*out.shape)[i] < 0) (*out.shape)[i] = d[i];
}

void GraphCompiler::build_node(const ::onnx::NodeProto& node) {
  const std::string label = node_label(node);
  if (node.op_type() == "If" && (node.domain().empty() || node.domain() == "ai.onnx") && env_.options.fold_constants &&
      inline_if(node))
    return;
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
  // Shape values: the dims a partly known shape input fixes; a fully known value is a constant.
  std::optional<Partial> part;
  if (ctx.out_.size() == 1 && !node.output(0).empty() && !ctx.out_const_[0]) {
    refine_dims(node, in_ids, ctx.out_[0]);
    part = partial_out(node, in_ids, ctx.opset());
    const ValueInfo& o = ctx.out_[0];
    int64_t n = o.shape ? 1 : -1;
    if (o.shape)
      for (int64_t d : *o.shape) n = d < 0 || n < 0 ? -1 : n * d;
    if (part && env_.options.fold_constants && def->foldable && n == static_cast<int64_t>(part->size()) &&
        std::all_of(part->begin(), part->end(), [](const auto& v) { return v.has_value(); }) &&
        (o.dtype == DType::I64 || o.dtype == DType::I32 || o.dtype == DType::Bool)) {
      Tensor t = Tensor::empty(o.dtype, *o.shape);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t v = *(*part)[static_cast<size_t>(i)];
        if (o.dtype == DType::I64) t.data<int64_t>()[i] = v;
        else if (o.dtype == DType::I32) t.data<int32_t>()[i] = static_cast<int32_t>(v);
        else t.data<bool>()[i] = v != 0;
      }
      ctx.out_const_[0] = std::make_shared<const Tensor>(std::move(t));
    }
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
  if (part && outs[0] >= 0) partial_[outs[0]] = std::move(*part);
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
  }, env_.options.fuse_transposed_gemm && env_.target.cpu_only(), !env_.target.reproducible(),
     env_.options.fuse_edge_conv && !env_.target.reproducible());
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
