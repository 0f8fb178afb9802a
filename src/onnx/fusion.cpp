#include "onnx/fusion.hpp"

#include "onnx/proto_io.hpp"
#include "quiver/core/error.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace quiver::onnx {

std::string node_label(const ::onnx::NodeProto& n) {
  return (n.name().empty() ? (n.output_size() ? n.output(0) : std::string("?")) : n.name()) + " (" + n.op_type() + ")";
}

namespace {

struct Use {
  size_t node;
  int input;
};

class Fuser {
 public:
  Fuser(const ::onnx::GraphProto& g, const ConstLookup& lookup, FusedGraph& out, bool cpu_engine, bool default_numerics,
        bool emitter)
      : g_(g), lookup_(lookup), out_(out), cpu_engine_(cpu_engine), default_numerics_(default_numerics), emitter_(emitter) {
    for (const auto& n : g.node()) nodes_.push_back(&n);
    alive_.assign(nodes_.size(), true);
  }

  void run() {
    // First: the Convs and BatchNorms a transpose pair hid become adjacent for the passes below.
    // Each rewrite can expose another pair (a node list need not be in order): until none is left.
    if (cpu_engine_)
      for (int before = -1; before != out_.fused_count;) {
        before = out_.fused_count;
        pass({"Transpose"}, &Fuser::fold_transposes);
      }
    // Bit-exact (Y_h holds the same floats as Y's last step): every numerics, the CPU engine's.
    if (cpu_engine_) pass({"Gather"}, &Fuser::lstm_last_step);
    pass({"BatchNormalization"}, &Fuser::fold_bn);
    pass({"Add"}, &Fuser::fuse_bias);
    if (cpu_engine_ || (emitter_ && default_numerics_)) pass({"Gemm"}, &Fuser::fuse_transposed_a);
    if ((cpu_engine_ || emitter_) && default_numerics_) {  // kernels devices and reproducible mode lack
      pass({"Erf"}, &Fuser::fuse_gelu);
      pass({"ReduceMean"}, &Fuser::fuse_layer_norm);
    }
    pass({"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip"}, &Fuser::fuse_act);
    // After fuse_act: takes the Conv's activation. The CPU engine's kernel (default numerics) and the
    // emitter's step both compute (W1 - W2) x + W2 f; only the emitter goes on to the block.
    if ((cpu_engine_ && default_numerics_) || emitter_) pass({"Conv"}, &Fuser::fuse_edge_conv);
    if (emitter_) {
      pass({"ReduceMean"}, &Fuser::fuse_edge_mean);
      if (default_numerics_) pass({"Conv"}, &Fuser::fuse_pointwise_chain);
    }
    // Bit-exact (it only moves values): every numerics. Devices have no kernel for it.
    if (cpu_engine_ || emitter_) pass({"ScatterND"}, &Fuser::fuse_scatter_parts);
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (alive_[i]) out_.nodes.push_back(nodes_[i]);
  }

 private:
  // One fusion pass: the uses as the previous passes left them, then `fuse` at every live node of
  // the default domain whose op is one of `ops`.
  void pass(std::initializer_list<std::string_view> ops, void (Fuser::*fuse)(size_t)) {
    rebuild_uses();
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (alive_[i] && dom(i) && std::find(ops.begin(), ops.end(), nodes_[i]->op_type()) != ops.end()) (this->*fuse)(i);
  }

  bool dom(size_t i) const { return nodes_[i]->domain().empty() || nodes_[i]->domain() == "ai.onnx"; }

  void rebuild_uses() {
    producer_.clear();
    uses_.clear();
    graph_outputs_.clear();
    for (const auto& o : g_.output()) graph_outputs_[o.name()] = true;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!alive_[i]) continue;
      for (const auto& o : nodes_[i]->output()) producer_[o] = i;
      for (int k = 0; k < nodes_[i]->input_size(); ++k) uses_[nodes_[i]->input(k)].push_back({i, k});
      // Names read inside subgraphs count as uses too (they must stay materialised).
      for (const auto& a : nodes_[i]->attribute())
        if (a.has_g() || a.graphs_size()) sub_uses(a, i);
    }
  }
  void sub_uses(const ::onnx::AttributeProto& a, size_t i) {
    auto scan = [&](const ::onnx::GraphProto& sg, auto& self) -> void {
      for (const auto& n : sg.node()) {
        for (const auto& in : n.input()) uses_[in].push_back({i, -1});
        for (const auto& at : n.attribute()) {
          if (at.has_g()) self(at.g(), self);
          for (const auto& gg : at.graphs()) self(gg, self);
        }
      }
      for (const auto& o : sg.output()) uses_[o.name()].push_back({i, -1});
    };
    if (a.has_g()) scan(a.g(), scan);
    for (const auto& gg : a.graphs()) scan(gg, scan);
  }
  // The only consumer of `name` is node `by` (and it is not a graph output).
  bool single_use(const std::string& name, size_t by) const {
    if (graph_outputs_.count(name)) return false;
    auto it = uses_.find(name);
    if (it == uses_.end() || it->second.size() != 1) return false;
    return it->second[0].node == by;
  }
  int producer(const std::string& name) const {
    auto it = producer_.find(name);
    return it == producer_.end() ? -1 : static_cast<int>(it->second);
  }
  static const ::onnx::AttributeProto* attr(const ::onnx::NodeProto& n, const char* name) {
    for (const auto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  ::onnx::NodeProto* clone(size_t i) {
    out_.owned.push_back(*nodes_[i]);
    nodes_[i] = &out_.owned.back();
    return &out_.owned.back();
  }
  // The list of nodes rewritten node `n` absorbed (attribute _quiver_fused, fusion.hpp), made on first use.
  static ::onnx::AttributeProto* record(::onnx::NodeProto* n) {
    for (auto& at : *n->mutable_attribute())
      if (at.name() == "_quiver_fused") return &at;
    auto* a = n->add_attribute();
    a->set_name("_quiver_fused");
    a->set_type(::onnx::AttributeProto::STRINGS);
    return a;
  }
  // Records on `n` the nodes `from`, each followed by what it had absorbed itself (a chain that takes
  // a Conv with a folded BatchNorm names the BatchNorm too).
  void absorbed(::onnx::NodeProto* n, const std::vector<int>& from, const std::string& first = "") {
    ::onnx::AttributeProto* a = record(n);
    if (!first.empty()) a->add_strings(first);
    for (int i : from) {
      const auto& f = *nodes_[static_cast<size_t>(i)];
      a->add_strings(node_label(f));
      if (const auto* had = attr(f, "_quiver_fused"))
        for (const auto& x : had->strings()) a->add_strings(x);
    }
  }
  std::string add_const(const std::string& base, Tensor t) {
    std::string name = base + "__quiver_fused_" + std::to_string(out_.new_constants.size());
    out_.new_constants.emplace_back(name, std::make_shared<const Tensor>(std::move(t)));
    return name;
  }
  // Constant tensor of any dtype: a tensor made by an earlier fusion, an initializer, or a Constant
  // node's value (parsed once and cached).
  std::shared_ptr<const Tensor> const_tensor(const std::string& name) const {
    if (name.empty()) return nullptr;
    for (const auto& [n, t] : out_.new_constants)
      if (n == name) return t;
    auto t = lookup_(name);
    if (!t) {  // weights exported as Constant nodes
      const int pi = producer(name);
      if (pi >= 0 && nodes_[pi]->op_type() == "Constant") {
        auto it = constant_nodes_.find(name);
        if (it == constant_nodes_.end()) {
          std::shared_ptr<const Tensor> v;
          if (const auto* a = attr(*nodes_[pi], "value"); a && a->has_t()) {
            try {
              v = std::make_shared<const Tensor>(tensor_from_proto(a->t(), "", name));
            } catch (const Error&) {
            }
          }
          it = constant_nodes_.emplace(name, v).first;
        }
        t = it->second;
      }
    }
    return t;
  }
  std::shared_ptr<const Tensor> f32_const(const std::string& name) const {
    auto t = const_tensor(name);
    return t && t->dtype() == DType::F32 ? t : nullptr;
  }
  // e.g. a Reshape target
  std::shared_ptr<const Tensor> i64_const(const std::string& name) const {
    auto t = const_tensor(name);
    return t && t->dtype() == DType::I64 ? t : nullptr;
  }

  // The one node that reads `name` (not a graph output, read once), of type `op`; -1 otherwise.
  int sole_user(const std::string& name, const char* op) const {
    if (graph_outputs_.count(name)) return -1;
    auto it = uses_.find(name);
    if (it == uses_.end() || it->second.size() != 1 || it->second[0].input < 0) return -1;
    const size_t u = it->second[0].node;
    return nodes_[u]->op_type() == op && dom(u) ? static_cast<int>(u) : -1;
  }
  // A float constant holding one value close to `v` (exporters write 1/sqrt(2) and eps in float).
  bool scalar_near(const std::string& name, double v) const {
    auto t = f32_const(name);
    if (!t || t->numel() != 1) return false;
    return std::abs(static_cast<double>(t->data<float>()[0]) - v) <= 1e-6 * std::abs(v);
  }
  // For a binary node that reads `from`: its other input.
  static const std::string* other_input(const ::onnx::NodeProto& n, const std::string& from) {
    if (n.input_size() != 2) return nullptr;
    if (n.input(0) == from) return &n.input(1);
    if (n.input(1) == from) return &n.input(0);
    return nullptr;
  }
  // Node `at` becomes `op_type` (no attributes) reading `inputs`; it absorbed the node it was and `from`.
  void replace_with(size_t at, const char* op_type, std::vector<std::string> inputs, const std::string& output,
                    const std::vector<int>& from) {
    const std::string was = node_label(*nodes_[at]);
    std::vector<std::string> had;  // what the node had absorbed before
    if (const auto* f = attr(*nodes_[at], "_quiver_fused")) had.assign(f->strings().begin(), f->strings().end());
    auto* n = clone(at);
    n->set_op_type(op_type);
    n->clear_domain();
    n->clear_input();
    for (auto& in : inputs) n->add_input(std::move(in));
    n->clear_output();
    n->add_output(output);
    n->clear_attribute();
    absorbed(n, {}, was);
    for (auto& x : had) record(n)->add_strings(std::move(x));
    absorbed(n, from);
  }

  // PyTorch's exact GELU as exported before opset 20:
  //   Div(x, sqrt 2) -> Erf -> Add(1) -> Mul(x, .) -> Mul(0.5)  =>  Gelu(x)
  // one pass over the tensor instead of five (ParT applies it to every pair feature map).
  void fuse_gelu(size_t erf_i) {
    const auto& erf = *nodes_[erf_i];
    if (erf.input_size() != 1 || erf.output_size() != 1) return;
    const int di = producer(erf.input(0));
    if (di < 0 || nodes_[di]->op_type() != "Div" || !dom(static_cast<size_t>(di)) || !single_use(erf.input(0), erf_i))
      return;
    const auto& div = *nodes_[di];
    if (div.input_size() != 2 || !scalar_near(div.input(1), 1.4142135623730951)) return;
    const std::string& x = div.input(0);
    const int ai = sole_user(erf.output(0), "Add");
    if (ai < 0) return;
    const std::string* one = other_input(*nodes_[ai], erf.output(0));
    if (!one || !scalar_near(*one, 1.0)) return;
    const int mi = sole_user(nodes_[ai]->output(0), "Mul");
    if (mi < 0) return;
    const std::string* mx = other_input(*nodes_[mi], nodes_[ai]->output(0));
    if (!mx || *mx != x) return;
    const int hi = sole_user(nodes_[mi]->output(0), "Mul");
    if (hi < 0) return;
    const std::string* half = other_input(*nodes_[hi], nodes_[mi]->output(0));
    if (!half || !scalar_near(*half, 0.5)) return;
    const std::string y = nodes_[hi]->output(0);
    replace_with(static_cast<size_t>(di), "Gelu", {x}, y, {static_cast<int>(erf_i), ai, mi, hi});
    for (int k : {static_cast<int>(erf_i), ai, mi, hi}) alive_[static_cast<size_t>(k)] = false;
    ++out_.fused_count;
  }

  // ReduceMean over the last axis, keepdims (axes as attribute before opset 18, as input after).
  bool mean_last_axis(const ::onnx::NodeProto& n) const {
    if (const auto* kd = attr(n, "keepdims"); kd && kd->i() == 0) return false;
    const auto axes = reduce_axes(n);
    return axes && *axes == std::vector<int64_t>{-1};
  }
  // The constant axes of a Reduce*, Unsqueeze or Squeeze node (attribute before opset 18 / 13, input after);
  // nullopt when they are not constant, or empty with noop_with_empty_axes.
  std::optional<std::vector<int64_t>> reduce_axes(const ::onnx::NodeProto& n) const {
    if (const auto* nw = attr(n, "noop_with_empty_axes"); nw && nw->i() != 0) return std::nullopt;
    if (const auto* ax = attr(n, "axes")) {
      if (n.input_size() != 1) return std::nullopt;
      return std::vector<int64_t>(ax->ints().begin(), ax->ints().end());
    }
    auto t = n.input_size() == 2 ? i64_const(n.input(1)) : nullptr;
    if (!t) return std::nullopt;
    return std::vector<int64_t>(t->data<int64_t>(), t->data<int64_t>() + t->numel());
  }
  // LayerNorm over the last axis as PyTorch exports it before opset 17:
  //   m = ReduceMean(x); d = Sub(x, m); v = ReduceMean(Pow(d, 2)); y = Div(d, Sqrt(Add(v, eps)))
  //   -> Mul(gamma) -> Add(beta)   =>  LayerNormalization(x, gamma, beta, axis -1, epsilon eps)
  // nine passes and four temporaries become one pass per row.
  void fuse_layer_norm(size_t m_i) {
    const auto& rm = *nodes_[m_i];
    if (rm.output_size() != 1 || !mean_last_axis(rm)) return;
    const std::string& x = rm.input(0);
    const int si = sole_user(rm.output(0), "Sub");
    if (si < 0 || nodes_[si]->input_size() != 2 || nodes_[si]->input(0) != x || nodes_[si]->input(1) != rm.output(0))
      return;
    const std::string& d = nodes_[si]->output(0);
    // d feeds exactly Pow(d, 2) and Div(d, .)
    auto it = uses_.find(d);
    if (graph_outputs_.count(d) || it == uses_.end() || it->second.size() != 2) return;
    int pi = -1, vi = -1;
    for (const auto& u : it->second) {
      if (u.input != 0) return;
      const auto& op = nodes_[u.node]->op_type();
      if (op == "Pow" && dom(u.node)) pi = static_cast<int>(u.node);
      else if (op == "Div" && dom(u.node)) vi = static_cast<int>(u.node);
    }
    if (pi < 0 || vi < 0 || nodes_[pi]->input_size() != 2 || !scalar_near(nodes_[pi]->input(1), 2.0)) return;
    const int vm = sole_user(nodes_[pi]->output(0), "ReduceMean");
    if (vm < 0 || nodes_[vm]->input(0) != nodes_[pi]->output(0) || !mean_last_axis(*nodes_[vm])) return;
    const int ei = sole_user(nodes_[vm]->output(0), "Add");
    if (ei < 0) return;
    const std::string* eps_name = other_input(*nodes_[ei], nodes_[vm]->output(0));
    auto eps = eps_name ? f32_const(*eps_name) : nullptr;
    if (!eps || eps->numel() != 1 || !(eps->data<float>()[0] >= 0)) return;
    const int qi = sole_user(nodes_[ei]->output(0), "Sqrt");
    if (qi < 0 || sole_user(nodes_[qi]->output(0), "Div") != vi || nodes_[vi]->input_size() != 2 ||
        nodes_[vi]->input(1) != nodes_[qi]->output(0))
      return;
    // Scale and shift: constant float vectors (LayerNormalization broadcasts them to the last axis
    // and checks their length at run time).
    const int gi = sole_user(nodes_[vi]->output(0), "Mul");
    if (gi < 0) return;
    const std::string* gamma = other_input(*nodes_[gi], nodes_[vi]->output(0));
    auto g = gamma ? f32_const(*gamma) : nullptr;
    if (!g || g->rank() != 1) return;
    const int bi = sole_user(nodes_[gi]->output(0), "Add");
    if (bi < 0) return;
    const std::string* beta = other_input(*nodes_[bi], nodes_[gi]->output(0));
    auto b = beta ? f32_const(*beta) : nullptr;
    if (!b || b->rank() != 1 || b->numel() != g->numel()) return;
    const std::string y = nodes_[bi]->output(0);
    const float e = eps->data<float>()[0];
    replace_with(m_i, "LayerNormalization", {x, *gamma, *beta}, y, {si, pi, vm, ei, qi, vi, gi, bi});
    auto* a = out_.owned.back().add_attribute();
    a->set_name("epsilon");
    a->set_type(::onnx::AttributeProto::FLOAT);
    a->set_f(e);
    auto* ax = out_.owned.back().add_attribute();
    ax->set_name("axis");
    ax->set_type(::onnx::AttributeProto::INT);
    ax->set_i(-1);
    for (int k : {si, pi, vm, ei, qi, vi, gi, bi}) alive_[static_cast<size_t>(k)] = false;
    ++out_.fused_count;
  }

  // Transpose(X [B, C, L], perm 0,2,1) -> Reshape(to 2-D) -> Gemm(A, transA = 0)  =>  Gemm reading X
  // directly as B transposed blocks (attribute _quiver_a_btrans = the Reshape target; the kernel
  // checks at run time that the target is [B*L, C] and otherwise materialises the transpose).
  // Exporters of interaction networks and set transformers leave this pattern around every MLP.
  void fuse_transposed_a(size_t gi) {
    const auto& gm = *nodes_[gi];
    if (gm.input_size() < 2 || gm.input(0).empty()) return;
    if (const auto* ta = attr(gm, "transA"); ta && ta->i() != 0) return;
    if (attr(gm, "_quiver_a_btrans")) return;
    const int ri = producer(gm.input(0));
    if (ri < 0 || nodes_[ri]->op_type() != "Reshape" || !dom(static_cast<size_t>(ri))) return;
    if (!single_use(gm.input(0), gi)) return;
    const auto& rs = *nodes_[ri];
    if (rs.input_size() != 2) return;
    if (const auto* az = attr(rs, "allowzero"); az && az->i() != 0) return;
    auto target = i64_const(rs.input(1));
    if (!target || target->rank() != 1 || target->numel() != 2) return;
    const int ti = producer(rs.input(0));
    if (ti < 0 || nodes_[ti]->op_type() != "Transpose" || !dom(static_cast<size_t>(ti))) return;
    if (!single_use(rs.input(0), static_cast<size_t>(ri))) return;
    const auto* perm = attr(*nodes_[ti], "perm");
    if (!perm || perm->ints_size() != 3 || perm->ints(0) != 0 || perm->ints(1) != 2 || perm->ints(2) != 1) return;
    const std::string x = nodes_[ti]->input(0);
    auto* n = clone(gi);
    n->set_input(0, x);
    auto* a = n->add_attribute();
    a->set_name("_quiver_a_btrans");
    a->set_type(::onnx::AttributeProto::INTS);
    a->add_ints(target->data<int64_t>()[0]);
    a->add_ints(target->data<int64_t>()[1]);
    absorbed(n, {ti, ri});
    alive_[static_cast<size_t>(ri)] = false;
    alive_[static_cast<size_t>(ti)] = false;
    ++out_.fused_count;
  }

  static std::optional<std::vector<int64_t>> perm_of(const ::onnx::NodeProto& n) {
    const auto* p = attr(n, "perm");
    if (!p || p->ints_size() == 0) return std::nullopt;  // the default (reversed) needs the rank
    return std::vector<int64_t>(p->ints().begin(), p->ints().end());
  }
  // The default-domain node that produces `name` for its only reader `by`, looking through Identity
  // nodes (each read only by the next; collected in `ids`); -1 when a link has another reader.
  int producer_via_identity(std::string name, size_t by, std::vector<int>& ids) const {
    for (;;) {
      if (!single_use(name, by)) return -1;
      const int p = producer(name);
      if (p < 0 || !dom(static_cast<size_t>(p))) return -1;
      if (nodes_[p]->op_type() != "Identity" || nodes_[p]->input_size() != 1) return p;
      ids.push_back(p);
      by = static_cast<size_t>(p);
      name = nodes_[p]->input(0);
    }
  }
  // Transpose(p) -> Transpose(q)                         =>  Transpose(p o q), or Identity (a view)
  // Transpose(p) -> U -> Transpose(q), U elementwise unary  =>  U -> Transpose(p o q), or U -> Identity
  // keras2onnx wraps every Conv1D and BatchNormalization in Transpose(0,2,1) pairs (DeepDoubleX: 18
  // per call), so these meet back to back; Identity nodes between are looked through. Bit-exact: the
  // same values, moved once or not at all.
  void fold_transposes(size_t t2) {
    const auto& t = *nodes_[t2];
    if (t.input_size() != 1 || t.output_size() != 1) return;
    const auto q = perm_of(t);
    if (!q) return;
    std::vector<int> gone;  // Identities between T1 and its reader, dead with T1
    int p = producer_via_identity(t.input(0), t2, gone);
    if (p < 0) return;
    int u = -1;
    static constexpr std::string_view kUnary[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Abs", "Neg", "Exp"};
    if (std::find(std::begin(kUnary), std::end(kUnary), nodes_[p]->op_type()) != std::end(kUnary)) {
      if (nodes_[p]->input_size() != 1 || nodes_[p]->output_size() != 1) return;
      u = p;
      gone.clear();  // the Identities between U and T2 stay: views of U's (now untransposed) output
      p = producer_via_identity(nodes_[u]->input(0), static_cast<size_t>(u), gone);
      if (p < 0) return;
    }
    if (nodes_[p]->op_type() != "Transpose" || nodes_[p]->input_size() != 1) return;
    const auto pp = perm_of(*nodes_[p]);
    if (!pp || pp->size() != q->size()) return;
    std::vector<int64_t> c(q->size());
    bool identity = true;
    for (size_t i = 0; i < c.size(); ++i) {
      if ((*q)[i] < 0 || (*q)[i] >= static_cast<int64_t>(c.size())) return;
      c[i] = (*pp)[static_cast<size_t>((*q)[i])];  // output dim i is T1's dim q[i], i.e. x's dim p[q[i]]
      identity &= c[i] == static_cast<int64_t>(i);
    }
    const std::string x = nodes_[p]->input(0);
    if (u >= 0) clone(static_cast<size_t>(u))->set_input(0, x);
    auto* n = clone(t2);
    if (u < 0) n->set_input(0, x);
    std::vector<std::string> had;
    if (const auto* f = attr(*n, "_quiver_fused")) had.assign(f->strings().begin(), f->strings().end());
    n->clear_attribute();
    if (identity) {
      n->set_op_type("Identity");
    } else {
      auto* a = n->add_attribute();
      a->set_name("perm");
      a->set_type(::onnx::AttributeProto::INTS);
      for (auto v : c) a->add_ints(v);
    }
    for (auto& s : had) record(n)->add_strings(std::move(s));
    absorbed(n, {p});
    alive_[static_cast<size_t>(p)] = false;
    for (int i : gone) alive_[static_cast<size_t>(i)] = false;
    ++out_.fused_count;
  }

  // Gather(Transpose(Squeeze(LSTM.Y, axes [1]), perm [1, 0, 2]), scalar -1, axis 1): the last step of
  // a forward, one-direction LSTM's Y as [B, H] (PyTorch's `out[:, -1]` of a batch_first LSTM; each
  // of DeepJet's three). With no sequence_lens every sequence runs all T steps, so that is Y_h [1, B,
  // H]: the LSTM gives Y_h, a Flatten(axis 2) makes it [B, H], and Y is never written. At batch 64
  // DeepJet's LSTMs transposed all T steps of h into Y and the Transpose copied them again, to keep
  // one step in T (25). With T = 0 the graph as written fails on the index (Y_h would be h0): the LSTM
  // is told the Gather's name (_quiver_last_step_of) and fails there the same way.
  void lstm_last_step(size_t gi) {
    const auto& ga = *nodes_[gi];
    if (ga.input_size() != 2 || ga.output_size() != 1) return;
    const auto* ax = attr(ga, "axis");
    const auto idx = i64_const(ga.input(1));
    if (!ax || ax->i() != 1 || !idx || idx->rank() != 0 || idx->data<int64_t>()[0] != -1) return;
    const int ti = producer(ga.input(0));
    if (ti < 0 || nodes_[ti]->op_type() != "Transpose" || !dom(static_cast<size_t>(ti)) || !single_use(ga.input(0), gi))
      return;
    if (perm_of(*nodes_[ti]) != std::vector<int64_t>{1, 0, 2} || nodes_[ti]->input_size() != 1) return;
    const int si = producer(nodes_[ti]->input(0));
    if (si < 0 || nodes_[si]->op_type() != "Squeeze" || !dom(static_cast<size_t>(si)) ||
        !single_use(nodes_[ti]->input(0), static_cast<size_t>(ti)))
      return;
    const auto& sq = *nodes_[si];
    if (reduce_axes(sq) != std::vector<int64_t>{1}) return;
    const int li = producer(sq.input(0));
    if (li < 0 || nodes_[li]->op_type() != "LSTM" || !dom(static_cast<size_t>(li)) || nodes_[li]->output(0) != sq.input(0) ||
        !single_use(sq.input(0), static_cast<size_t>(si)))
      return;
    const auto& l = *nodes_[li];
    if (const auto* d = attr(l, "direction"); d && d->s() != "forward") return;
    if (const auto* lay = attr(l, "layout"); lay && lay->i() != 0) return;
    if (l.input_size() > 4 && !l.input(4).empty()) return;  // sequence_lens
    auto* ln = clone(static_cast<size_t>(li));
    while (ln->output_size() < 2) ln->add_output("");
    if (ln->output(1).empty()) ln->set_output(1, ga.output(0) + "__quiver_yh");
    ln->set_output(0, "");
    auto* ls = ln->add_attribute();
    ls->set_name("_quiver_last_step_of");
    ls->set_type(::onnx::AttributeProto::STRING);
    ls->set_s("Gather '" + node_label(ga) + "'");
    const std::string yh = ln->output(1);
    auto* f = clone(gi);
    f->set_op_type("Flatten");
    f->clear_input();
    f->add_input(yh);
    f->clear_attribute();
    auto* a = f->add_attribute();
    a->set_name("axis");
    a->set_type(::onnx::AttributeProto::INT);
    a->set_i(2);
    absorbed(f, {si, ti}, node_label(ga));
    alive_[static_cast<size_t>(si)] = false;
    alive_[static_cast<size_t>(ti)] = false;
    ++out_.fused_count;
  }

  // Conv -> BatchNormalization(inference)  =>  Conv with W' = W*s, b' = (b-mean)*s + beta.
  void fold_bn(size_t bn_i) {
    const auto& bn = *nodes_[bn_i];
    if (bn.output_size() != 1 || bn.input_size() != 5) return;
    if (auto* tm = attr(bn, "training_mode"); tm && tm->i() != 0) return;
    const int ci = producer(bn.input(0));
    if (ci < 0 || nodes_[ci]->op_type() != "Conv" || !dom(static_cast<size_t>(ci))) return;
    if (!single_use(bn.input(0), bn_i)) return;
    const auto& conv = *nodes_[ci];
    auto W = f32_const(conv.input(1));
    auto scale = f32_const(bn.input(1)), beta = f32_const(bn.input(2)), mean = f32_const(bn.input(3)),
         var = f32_const(bn.input(4));
    std::shared_ptr<const Tensor> B = conv.input_size() > 2 ? f32_const(conv.input(2)) : nullptr;
    if (!W || !scale || !beta || !mean || !var || (conv.input_size() > 2 && !conv.input(2).empty() && !B)) return;
    const int64_t oc = W->rank() ? W->dim(0) : 0;
    if (oc == 0 || scale->numel() != oc || beta->numel() != oc || mean->numel() != oc || var->numel() != oc) return;
    if (B && B->numel() != oc) return;
    const float eps = attr(bn, "epsilon") ? attr(bn, "epsilon")->f() : 1e-5f;
    Tensor W2 = W->clone();
    Tensor B2 = Tensor::empty(DType::F32, {oc});
    const int64_t per = W->numel() / oc;
    for (int64_t o = 0; o < oc; ++o) {
      const float s = scale->data<float>()[o] / std::sqrt(var->data<float>()[o] + eps);
      for (int64_t k = 0; k < per; ++k) W2.data<float>()[o * per + k] *= s;
      const float b = B ? B->data<float>()[o] : 0.0f;
      B2.data<float>()[o] = (b - mean->data<float>()[o]) * s + beta->data<float>()[o];
    }
    auto* n = clone(static_cast<size_t>(ci));
    const std::string wn = add_const(conv.input(1), std::move(W2));
    const std::string bn_name = add_const(conv.input(1) + "_bias", std::move(B2));
    n->set_input(1, wn);
    if (n->input_size() > 2) n->set_input(2, bn_name);
    else n->add_input(bn_name);
    n->set_output(0, bn.output(0));
    absorbed(n, {static_cast<int>(bn_i)});
    alive_[bn_i] = false;
    ++out_.fused_count;
  }

  // MatMul(x, W const [K,N]) -> Add(bias const, N values)  =>  MatMul(x, W, bias).
  void fuse_bias(size_t add_i) {
    const auto& add = *nodes_[add_i];
    if (add.input_size() != 2) return;
    for (int side = 0; side < 2; ++side) {
      const int mi = producer(add.input(side));
      if (mi < 0 || nodes_[mi]->op_type() != "MatMul" || !dom(static_cast<size_t>(mi)) || nodes_[mi]->input_size() != 2)
        continue;
      if (!single_use(add.input(side), add_i)) continue;
      auto W = f32_const(nodes_[mi]->input(1));
      auto bias = f32_const(add.input(1 - side));
      if (!W || !bias || W->rank() != 2) continue;
      const int64_t N = W->dim(1);
      if (bias->numel() != N) continue;
      bool row = true;  // bias must broadcast along the last dim only: [N], [1,N], [1,1,N]...
      for (size_t d = 0; d + 1 < bias->rank(); ++d) row &= bias->dim(d) == 1;
      // Only [N] biases: a [1, N] bias would turn a 1-D MatMul result into 2-D through broadcasting.
      if (!row || bias->rank() != 1) continue;
      auto* n = clone(static_cast<size_t>(mi));
      n->add_input(add_const(add.input(1 - side), bias->reshaped(std::vector<int64_t>{N})));
      n->set_output(0, add.output(0));
      absorbed(n, {static_cast<int>(add_i)});
      alive_[add_i] = false;
      ++out_.fused_count;
      return;
    }
  }

  // Gemm / Conv / MatMul(float weights) -> activation  =>  producer with _quiver_act.
  void fuse_act(size_t act_i) {
    const auto& act = *nodes_[act_i];
    if (act.input_size() < 1 || act.output_size() != 1) return;
    int pi = producer(act.input(0));
    if (pi < 0 || !dom(static_cast<size_t>(pi)) || !single_use(act.input(0), act_i)) return;
    // Gemm -> Reshape -> activation (an interaction net's edge MLPs reshape [B*E, F] to [B, E, F]
    // before their last ReLU): the activation is elementwise, so the producer takes it and the
    // Reshape, a view, then gives the activation's output.
    int ri = -1;
    if (nodes_[pi]->op_type() == "Reshape" && nodes_[pi]->input_size() >= 1) {
      const int qi = producer(nodes_[pi]->input(0));
      if (qi < 0 || !dom(static_cast<size_t>(qi)) || !single_use(nodes_[pi]->input(0), static_cast<size_t>(pi))) return;
      ri = pi;
      pi = qi;
    }
    const auto& p = *nodes_[pi];
    const auto& pop = p.op_type();
    if (attr(p, "_quiver_act")) return;
    if (pop == "MatMul" || pop == "Conv") {
      if (!f32_const(p.input(1))) return;  // dtype must be float
    } else if (pop != "Gemm") {
      return;
    }
    float alpha = 0, beta = 0;
    const auto& op = act.op_type();
    if (op == "LeakyRelu") {
      alpha = attr(act, "alpha") ? attr(act, "alpha")->f() : 0.01f;
    } else if (op == "Clip") {
      alpha = -INFINITY;
      beta = INFINITY;
      if (act.input_size() > 1) {  // opset >= 11: min/max inputs, must be constant
        if (!act.input(1).empty()) {
          auto t = f32_const(act.input(1));
          if (!t || t->numel() != 1) return;
          alpha = t->data<float>()[0];
        }
        if (act.input_size() > 2 && !act.input(2).empty()) {
          auto t = f32_const(act.input(2));
          if (!t || t->numel() != 1) return;
          beta = t->data<float>()[0];
        }
      } else {
        if (auto* a = attr(act, "min")) alpha = a->f();
        if (auto* a = attr(act, "max")) beta = a->f();
      }
    }
    auto* n = clone(static_cast<size_t>(pi));
    auto add_attr = [&](const char* name, auto v) {
      auto* a = n->add_attribute();
      a->set_name(name);
      if constexpr (std::is_same_v<decltype(v), float>) {
        a->set_type(::onnx::AttributeProto::FLOAT);
        a->set_f(v);
      } else {
        a->set_type(::onnx::AttributeProto::STRING);
        a->set_s(v);
      }
    };
    add_attr("_quiver_act", std::string(op));
    add_attr("_quiver_alpha", alpha);
    add_attr("_quiver_beta", beta);
    if (ri >= 0) clone(static_cast<size_t>(ri))->set_output(0, act.output(0));
    else n->set_output(0, act.output(0));
    absorbed(n, {static_cast<int>(act_i)});
    alive_[act_i] = false;
    ++out_.fused_count;
  }

  // The constant weights [O, C, 1...] of a Conv that is a product over positions (1x1 kernel, unit
  // strides and dilations, no padding, one group; a constant bias of O values or none); null otherwise.
  std::shared_ptr<const Tensor> pointwise_conv(const ::onnx::NodeProto& conv) const {
    if (conv.input_size() < 2 || conv.output_size() != 1) return nullptr;
    auto W = f32_const(conv.input(1));
    if (!W || W->rank() < 3) return nullptr;
    for (size_t d = 2; d < W->rank(); ++d)
      if (W->dim(d) != 1) return nullptr;
    if (conv.input_size() > 2 && !conv.input(2).empty()) {
      auto b = f32_const(conv.input(2));
      if (!b || b->numel() != W->dim(0)) return nullptr;
    }
    for (const auto& a : conv.attribute()) {
      const auto& n = a.name();
      auto all = [&](int64_t v) {
        for (int64_t x : a.ints())
          if (x != v) return false;
        return true;
      };
      if (n == "group" ? a.i() != 1
          : n == "strides" || n == "dilations" || n == "kernel_shape" ? !all(1)
          : n == "pads" ? !all(0)
          : n == "auto_pad" ? a.s() != "NOTSET" && a.s() != "VALID"
          : n.rfind("_quiver_", 0) != 0)
        return nullptr;
    }
    return W;
  }

  // A float zero bias of n values, named after the weights `w` it goes with.
  std::string zero_bias(const std::string& w, int64_t n) {
    Tensor z = Tensor::empty(DType::F32, {n});
    std::fill(z.data<float>(), z.data<float>() + n, 0.f);
    return add_const(w, std::move(z));
  }
  // Per-layer activations of a fused chain (attributes acts / alphas / betas): the fused activation of
  // `conv`, or none for a layer without one (conv null).
  struct LayerActs {
    ::onnx::AttributeProto acts, alphas, betas;
    void add(const ::onnx::NodeProto* conv) {
      const auto* k = conv ? attr(*conv, "_quiver_act") : nullptr;
      const auto* al = conv ? attr(*conv, "_quiver_alpha") : nullptr;
      const auto* be = conv ? attr(*conv, "_quiver_beta") : nullptr;
      acts.add_strings(k ? k->s() : "");
      alphas.add_floats(al ? al->f() : 0.f);
      betas.add_floats(be ? be->f() : 0.f);
    }
    void put_on(::onnx::NodeProto* n) {
      put(n, acts, "acts", ::onnx::AttributeProto::STRINGS);
      put(n, alphas, "alphas", ::onnx::AttributeProto::FLOATS);
      put(n, betas, "betas", ::onnx::AttributeProto::FLOATS);
    }
  };
  static void put(::onnx::NodeProto* n, ::onnx::AttributeProto a, const char* name, ::onnx::AttributeProto::AttributeType t) {
    a.set_name(name);
    a.set_type(t);
    *n->add_attribute() = std::move(a);
  }

  // ParticleNet's EdgeConv features and their first 1x1 convolution, as PyTorch exports
  // get_graph_feature (v2: features gathered along axis 1 of a [C, N*P] transpose):
  //   g = Gather(f, idx, axis 1); G = Transpose(Reshape(g, s), perm 1,0,2,3); T = Tile(x, [1,1,1,k])
  //   y = Conv(Concat(T, Sub(G, T), axis 1), W [O, 2C, 1, 1], b)
  // =>  ai.quiver::EdgeConv(x, f, idx, s, W, b) with attribute k: the code emitter computes it as
  // (W1 - W2) x + W2 f over the points and one gather-add over the edges (ops/edgeconv.cpp), no
  // [2C, P, k] tensor and a k times smaller product. Dims the graph computes at run time (s) are
  // checked by the step.
  void fuse_edge_conv(size_t conv_i) {
    const auto& conv = *nodes_[conv_i];
    auto W = pointwise_conv(conv);
    if (!W || W->rank() != 4 || W->dim(1) % 2 != 0) return;
    auto node_of = [&](const std::string& name, const char* op, size_t user) -> int {
      const int i = producer(name);
      if (i < 0 || nodes_[i]->op_type() != op || !dom(static_cast<size_t>(i)) || !single_use(name, user)) return -1;
      return i;
    };
    const int ci = node_of(conv.input(0), "Concat", conv_i);
    if (ci < 0) return;
    const auto& cat = *nodes_[ci];
    const auto* axis = attr(cat, "axis");
    if (cat.input_size() != 2 || !axis || (axis->i() != 1 && axis->i() != -3)) return;
    const std::string& t = cat.input(0);
    const int si = node_of(cat.input(1), "Sub", static_cast<size_t>(ci));
    if (si < 0 || nodes_[si]->input_size() != 2 || nodes_[si]->input(1) != t) return;
    // T feeds exactly the Concat and the Sub.
    const int ti = producer(t);
    auto tu = uses_.find(t);
    if (ti < 0 || nodes_[ti]->op_type() != "Tile" || !dom(static_cast<size_t>(ti)) || graph_outputs_.count(t) ||
        tu == uses_.end() || tu->second.size() != 2)
      return;
    auto reps = i64_const(nodes_[ti]->input_size() == 2 ? nodes_[ti]->input(1) : std::string());
    if (!reps || reps->numel() != 4) return;
    const int64_t* rp = reps->data<int64_t>();
    if (rp[0] != 1 || rp[1] != 1 || rp[2] != 1 || rp[3] < 1) return;
    const int tri = node_of(nodes_[si]->input(0), "Transpose", static_cast<size_t>(si));
    if (tri < 0) return;
    const auto* perm = attr(*nodes_[tri], "perm");
    if (!perm || perm->ints_size() != 4 || perm->ints(0) != 1 || perm->ints(1) != 0 || perm->ints(2) != 2 ||
        perm->ints(3) != 3)
      return;
    const int ri = node_of(nodes_[tri]->input(0), "Reshape", static_cast<size_t>(tri));
    if (ri < 0 || nodes_[ri]->input_size() != 2) return;
    if (const auto* az = attr(*nodes_[ri], "allowzero"); az && az->i() != 0) return;
    const int gi = node_of(nodes_[ri]->input(0), "Gather", static_cast<size_t>(ri));
    if (gi < 0 || nodes_[gi]->input_size() != 2) return;
    const auto* gax = attr(*nodes_[gi], "axis");
    if (!gax || gax->i() != 1) return;
    std::vector<std::string> ins{nodes_[ti]->input(0), nodes_[gi]->input(0), nodes_[gi]->input(1), nodes_[ri]->input(1),
                                 conv.input(1)};
    if (conv.input_size() > 2 && !conv.input(2).empty()) ins.push_back(conv.input(2));
    std::vector<::onnx::AttributeProto> keep;  // the fused activation (replace_with keeps the record)
    for (const auto& a : conv.attribute())
      if (a.name() != "_quiver_fused" && a.name().rfind("_quiver_", 0) == 0) keep.push_back(a);
    replace_with(conv_i, "EdgeConv", ins, conv.output(0), {gi, ri, tri, ti, si, ci});
    auto* n = &out_.owned.back();
    n->set_domain("ai.quiver");
    for (auto& a : keep) *n->add_attribute() = std::move(a);
    auto* k = n->add_attribute();
    k->set_name("k");
    k->set_type(::onnx::AttributeProto::INT);
    k->set_i(rp[3]);
    for (int d : {ci, si, ti, tri, ri, gi}) alive_[static_cast<size_t>(d)] = false;
    ++out_.fused_count;
  }

  // The rest of an EdgeConv block up to its pooling: EdgeConv -> 1x1 Conv (+ activation) ... ->
  // ReduceMean over the edges (the last axis)  =>  the EdgeConv node with each convolution's W and b
  // appended (a zero bias made where one is absent) and attributes acts / alphas / betas (the layers'
  // activations) and mean_keepdims. The code emitter then runs the chain a tile of points at a time
  // (rt::edge_mean): no [N, O, P, k] tensor is alive, only the pooled [N, O, P].
  void fuse_edge_mean(size_t mean_i) {
    const auto& rm = *nodes_[mean_i];
    if (rm.input_size() < 1 || rm.output_size() != 1) return;
    const auto* kd = attr(rm, "keepdims");
    const int64_t keep = kd ? kd->i() : 1;
    const auto axes = reduce_axes(rm);
    if (!axes || axes->size() != 1 || ((*axes)[0] != 3 && (*axes)[0] != -1)) return;
    std::vector<int> convs;  // from the mean back to the EdgeConv
    std::string cur = rm.input(0);
    size_t user = mean_i;
    int ei = -1;
    while (ei < 0) {
      const int pi = producer(cur);
      if (pi < 0 || !single_use(cur, user)) return;
      const auto& p = *nodes_[static_cast<size_t>(pi)];
      if (p.domain() == "ai.quiver" && p.op_type() == "EdgeConv") {
        ei = pi;
      } else {
        if (!dom(static_cast<size_t>(pi)) || p.op_type() != "Conv" || !pointwise_conv(p)) return;
        convs.push_back(pi);
        cur = p.input(0);
        user = static_cast<size_t>(pi);
      }
    }
    std::reverse(convs.begin(), convs.end());
    const auto& ec = *nodes_[static_cast<size_t>(ei)];
    if (ec.input_size() < 5 || attr(ec, "mean_keepdims")) return;
    auto W0 = f32_const(ec.input(4));
    if (!W0) return;
    int64_t ch = W0->dim(0);
    for (int c : convs) {
      auto W = pointwise_conv(*nodes_[static_cast<size_t>(c)]);
      if (W->dim(1) != ch) return;
      ch = W->dim(0);
    }
    auto* n = clone(static_cast<size_t>(ei));
    if (n->input_size() == 5) n->add_input(zero_bias(ec.input(4), W0->dim(0)));
    LayerActs la;
    for (int c : convs) {
      const auto& cv = *nodes_[static_cast<size_t>(c)];
      n->add_input(cv.input(1));
      if (cv.input_size() > 2 && !cv.input(2).empty()) n->add_input(cv.input(2));
      else n->add_input(zero_bias(cv.input(1), f32_const(cv.input(1))->dim(0)));
      la.add(&cv);
    }
    la.put_on(n);
    auto* k = n->add_attribute();
    k->set_name("mean_keepdims");
    k->set_type(::onnx::AttributeProto::INT);
    k->set_i(keep != 0 ? 1 : 0);
    n->set_output(0, rm.output(0));
    std::vector<int> gone = convs;
    gone.push_back(static_cast<int>(mean_i));
    absorbed(n, gone);
    for (int g : gone) alive_[static_cast<size_t>(g)] = false;
    ++out_.fused_count;
  }

  // A node a position-wise chain can hold: a 1x1 Conv, an inference BatchNormalization with constant
  // parameters and no fused activation, a GELU (erf or tanh form).
  bool chain_member(size_t i) const {
    const auto& n = *nodes_[i];
    if (!dom(i) || n.output_size() != 1 || n.input_size() < 1) return false;
    const auto& op = n.op_type();
    if (op == "Conv") return pointwise_conv(n) != nullptr;
    if (op == "Gelu") {
      const auto* a = attr(n, "approximate");
      return !a || a->s() == "none" || a->s() == "tanh";
    }
    if (op != "BatchNormalization" || n.input_size() != 5 || attr(n, "_quiver_act")) return false;
    if (const auto* t = attr(n, "training_mode"); t && t->i() != 0) return false;
    auto g = f32_const(n.input(1));
    for (int k = 1; k < 5; ++k)
      if (auto p = f32_const(n.input(k)); !p || p->numel() != g->numel()) return false;
    return true;
  }
  // A run of position-wise nodes with two or more 1x1 Convs, each value inside read only by the next
  // node (ParT's pair embedding: BatchNorm, GELU, then three Conv (+ BN folded) and GELUs; ParT's
  // and DeepJet's per-particle convolutions)  =>  ai.quiver::PointwiseChain (ops/pointwisechain.cpp):
  // the code emitter runs it a tile of positions at a time, so none of the [N, C, L] values between
  // the nodes is alive. Seeded at each Conv, grown backwards and forwards.
  void fuse_pointwise_chain(size_t conv_i) {
    if (!chain_member(conv_i)) return;
    std::vector<size_t> run{conv_i};
    for (;;) {  // backwards
      const std::string& in = nodes_[run.front()]->input(0);
      const int pi = producer(in);
      if (pi < 0 || !alive_[static_cast<size_t>(pi)] || !single_use(in, run.front()) || !chain_member(static_cast<size_t>(pi)))
        break;
      run.insert(run.begin(), static_cast<size_t>(pi));
    }
    for (;;) {  // forwards
      const std::string& out = nodes_[run.back()]->output(0);
      if (graph_outputs_.count(out)) break;
      auto it = uses_.find(out);
      if (it == uses_.end() || it->second.size() != 1 || it->second[0].input != 0) break;
      const size_t u = it->second[0].node;
      if (!alive_[u] || !chain_member(u)) break;
      run.push_back(u);
    }
    size_t convs = 0;
    for (size_t i : run) convs += nodes_[i]->op_type() == "Conv";
    if (convs < 2) return;
    std::vector<std::string> ins{nodes_[run.front()]->input(0)};
    ::onnx::AttributeProto layers;
    LayerActs la;
    for (size_t i : run) {
      const auto& n = *nodes_[i];
      const auto& op = n.op_type();
      la.add(op == "Conv" ? &n : nullptr);
      if (op == "Conv") {
        layers.add_strings("Conv");
        ins.push_back(n.input(1));
        if (n.input_size() > 2 && !n.input(2).empty()) ins.push_back(n.input(2));
        else ins.push_back(zero_bias(n.input(1), pointwise_conv(n)->dim(0)));
      } else if (op == "Gelu") {
        const auto* a = attr(n, "approximate");
        layers.add_strings(a && a->s() == "tanh" ? "GeluTanh" : "Gelu");
      } else {  // BatchNormalization as y = x * scale + shift, as emit_batchnorm folds it
        layers.add_strings("Affine");
        auto g = f32_const(n.input(1)), b = f32_const(n.input(2)), m = f32_const(n.input(3)), v = f32_const(n.input(4));
        const int64_t C = g->numel();  // all four of C values (chain_member)
        const auto* ea = attr(n, "epsilon");
        Tensor sc = Tensor::empty(DType::F32, {C}), sh = Tensor::empty(DType::F32, {C});
        batchnorm_affine(g->data<float>(), b->data<float>(), m->data<float>(), v->data<float>(), ea ? ea->f() : 1e-5f, C,
                         sc.data<float>(), sh.data<float>());
        ins.push_back(add_const(n.input(1), std::move(sc)));
        ins.push_back(add_const(n.input(2), std::move(sh)));
      }
    }
    const size_t last = run.back();
    std::vector<int> from;
    for (size_t i : run)
      if (i != last) from.push_back(static_cast<int>(i));
    replace_with(last, "PointwiseChain", ins, nodes_[last]->output(0), from);
    auto* n = &out_.owned.back();
    n->set_domain("ai.quiver");
    put(n, std::move(layers), "layers", ::onnx::AttributeProto::STRINGS);
    la.put_on(n);
    for (int i : from) alive_[static_cast<size_t>(i)] = false;
    rebuild_uses();
    ++out_.fused_count;
  }

  // Index tuples built from broadcast parts, as ParT's pair embedding scatters into [N, 8, P, P]:
  //   ScatterND(data, Concat(Unsqueeze(Expand(c_0, s_0), -1), ..., Unsqueeze(c_k, -1), axis -1), u)
  // (reduction none)  =>  ai.quiver::ScatterNDParts(data, u, c_0, s_0, ..., c_k) with attribute
  // expanded (per part: 1 when its Expand's shape input follows it). The code emitter reads each tuple
  // through the parts' broadcast strides (rt::scatter_parts), so neither the int64 [..., k] tuples
  // nor the expanded parts exist (at ParT's NonZero bound, 2.2 MB and 4 x 0.5 MB per jet batch of 3).
  void fuse_scatter_parts(size_t s_i) {
    const auto& sc = *nodes_[s_i];
    if (sc.input_size() != 3 || sc.output_size() != 1) return;
    if (const auto* r = attr(sc, "reduction"); r && r->s() != "none") return;
    const int ci = producer(sc.input(1));
    if (ci < 0 || nodes_[ci]->op_type() != "Concat" || !dom(static_cast<size_t>(ci)) || !single_use(sc.input(1), s_i)) return;
    const auto& cat = *nodes_[ci];
    const auto* axis = attr(cat, "axis");
    if (!axis || axis->i() != -1 || cat.input_size() < 1 || cat.input_size() > 8) return;
    std::vector<std::string> ins{sc.input(0), sc.input(2)};
    ::onnx::AttributeProto expanded;
    std::vector<int> gone{ci};
    for (const auto& part : cat.input()) {
      const int ui = producer(part);
      if (ui < 0 || nodes_[ui]->op_type() != "Unsqueeze" || !dom(static_cast<size_t>(ui)) ||
          !single_use(part, static_cast<size_t>(ci)))
        return;
      const auto& un = *nodes_[ui];
      const auto axes = reduce_axes(un);
      if (!axes || *axes != std::vector<int64_t>{-1}) return;
      const std::string& c = un.input(0);
      const int ei = producer(c);
      if (ei >= 0 && nodes_[ei]->op_type() == "Expand" && dom(static_cast<size_t>(ei)) && nodes_[ei]->input_size() == 2 &&
          single_use(c, static_cast<size_t>(ui))) {
        ins.push_back(nodes_[ei]->input(0));
        ins.push_back(nodes_[ei]->input(1));
        expanded.add_ints(1);
        gone.push_back(ei);
      } else {
        ins.push_back(c);
        expanded.add_ints(0);
      }
      gone.push_back(ui);
    }
    replace_with(s_i, "ScatterNDParts", ins, sc.output(0), gone);
    auto* n = &out_.owned.back();
    n->set_domain("ai.quiver");
    put(n, std::move(expanded), "expanded", ::onnx::AttributeProto::INTS);
    for (int g : gone) alive_[static_cast<size_t>(g)] = false;
    ++out_.fused_count;
  }

  const ::onnx::GraphProto& g_;
  const ConstLookup& lookup_;
  FusedGraph& out_;
  bool cpu_engine_;
  bool default_numerics_;
  bool emitter_;
  std::vector<const ::onnx::NodeProto*> nodes_;
  std::vector<bool> alive_;
  std::unordered_map<std::string, size_t> producer_;
  std::unordered_map<std::string, std::vector<Use>> uses_;
  std::unordered_map<std::string, bool> graph_outputs_;
  mutable std::unordered_map<std::string, std::shared_ptr<const Tensor>> constant_nodes_;
};

}  // namespace

FusedGraph fuse_graph(const ::onnx::GraphProto& g, bool enabled, const ConstLookup& lookup_const,
                      bool cpu_engine_fusions, bool default_numerics, bool emitter_fusions) {
  FusedGraph out;
  if (!enabled) {
    for (const auto& n : g.node()) out.nodes.push_back(&n);
    return out;
  }
  Fuser(g, lookup_const, out, cpu_engine_fusions, default_numerics, emitter_fusions).run();
  return out;
}

}  // namespace quiver::onnx
