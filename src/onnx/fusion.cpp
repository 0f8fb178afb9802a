#include "onnx/fusion.hpp"

#include "onnx/proto_io.hpp"
#include "quiver/core/error.hpp"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <unordered_map>

namespace quiver::onnx {

namespace {

struct Use {
  size_t node;
  int input;
};

class Fuser {
 public:
  Fuser(const ::onnx::GraphProto& g, const ConstLookup& lookup, FusedGraph& out, bool transposed_gemm)
      : g_(g), lookup_(lookup), out_(out), transposed_gemm_(transposed_gemm) {
    for (const auto& n : g.node()) nodes_.push_back(&n);
    alive_.assign(nodes_.size(), true);
  }

  void run() {
    rebuild_uses();
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (alive_[i] && nodes_[i]->op_type() == "BatchNormalization" && dom(i)) fold_bn(i);
    rebuild_uses();
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (alive_[i] && nodes_[i]->op_type() == "Add" && dom(i)) fuse_bias(i);
    rebuild_uses();
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (transposed_gemm_ && alive_[i] && nodes_[i]->op_type() == "Gemm" && dom(i)) fuse_transposed_a(i);
    rebuild_uses();
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const auto& op = nodes_[i]->op_type();
      if (alive_[i] && dom(i) && (op == "Relu" || op == "LeakyRelu" || op == "Sigmoid" || op == "Tanh" || op == "Clip"))
        fuse_act(i);
    }
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (alive_[i]) out_.nodes.push_back(nodes_[i]);
  }

 private:
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
    alive_[static_cast<size_t>(ri)] = false;
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
      alive_[add_i] = false;
      ++out_.fused_count;
      return;
    }
  }

  // Gemm / Conv / MatMul(float weights) -> activation  =>  producer with _quiver_act.
  void fuse_act(size_t act_i) {
    const auto& act = *nodes_[act_i];
    if (act.input_size() < 1 || act.output_size() != 1) return;
    const int pi = producer(act.input(0));
    if (pi < 0 || !dom(static_cast<size_t>(pi)) || !single_use(act.input(0), act_i)) return;
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
    n->set_output(0, act.output(0));
    alive_[act_i] = false;
    ++out_.fused_count;
  }

  const ::onnx::GraphProto& g_;
  const ConstLookup& lookup_;
  FusedGraph& out_;
  bool transposed_gemm_;
  std::vector<const ::onnx::NodeProto*> nodes_;
  std::vector<bool> alive_;
  std::unordered_map<std::string, size_t> producer_;
  std::unordered_map<std::string, std::vector<Use>> uses_;
  std::unordered_map<std::string, bool> graph_outputs_;
  mutable std::unordered_map<std::string, std::shared_ptr<const Tensor>> constant_nodes_;
};

}  // namespace

FusedGraph fuse_graph(const ::onnx::GraphProto& g, bool enabled, const ConstLookup& lookup_const,
                      bool transposed_gemm) {
  FusedGraph out;
  if (!enabled) {
    for (const auto& n : g.node()) out.nodes.push_back(&n);
    return out;
  }
  Fuser(g, lookup_const, out, transposed_gemm).run();
  return out;
}

}  // namespace quiver::onnx
