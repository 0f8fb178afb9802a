// Test helper: builds a small ONNX graph in memory and loads it. Dynamic dims (-1) are all named
// "batch", or "n<position>" with numbered_dims (then each is independent).
#pragma once
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <functional>

#include <memory>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"

namespace quiver::test {

struct G {
  ::onnx::ModelProto m;
  ::onnx::GraphProto* g;
  bool numbered_dims = false;
  explicit G(int opset = 13) {
    m.set_ir_version(8);
    auto* o = m.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    g = m.mutable_graph();
    g->set_name("t");
  }
  void io(::onnx::ValueInfoProto* v, const std::string& name, int elem, std::vector<int64_t> dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem);
    auto* s = tt->mutable_shape();
    for (auto d : dims) {
      auto* dim = s->add_dim();
      if (d < 0) dim->set_dim_param(numbered_dims ? "n" + std::to_string(s->dim_size()) : "batch");
      else dim->set_dim_value(d);
    }
  }
  void input(const std::string& n, std::vector<int64_t> d, int elem = 1) { io(g->add_input(), n, elem, d); }
  void output(const std::string& n, std::vector<int64_t> d, int elem = 1) { io(g->add_output(), n, elem, d); }
  // Shapeless (rank unknown to the compiler).
  void io_any(::onnx::ValueInfoProto* v, const std::string& name, DType t) {
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(static_cast<int>(t));
  }
  void input(const std::string& n, std::vector<int64_t> d, DType t) { input(n, std::move(d), static_cast<int>(t)); }
  void output(const std::string& n, std::vector<int64_t> d, DType t) { output(n, std::move(d), static_cast<int>(t)); }
  ::onnx::NodeProto* node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                          const std::string& name = "") {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? out[0] + "_node" : name);
    for (auto& i : in) n->add_input(i);
    for (auto& o : out) n->add_output(o);
    return n;
  }
  void init(const std::string& name, const Tensor& t) {
    std::string bytes = quiver::onnx::serialize_tensor({name, t});
    g->add_initializer()->ParseFromString(bytes);
  }
  std::shared_ptr<const Model> load(quiver::onnx::CompileOptions co = {}, LoadOptions lo = {}) {
    lo.name = "unit";
    return quiver::onnx::load_onnx_bytes(bytes(), "", lo, co);
  }
  std::string bytes() const { return m.SerializeAsString(); }
};

// G at opset `Opset` by default, with independent dynamic dims (n1, n2, ...).
template <int Opset>
struct NumberedG : G {
  explicit NumberedG(int opset = Opset) : G(opset) { numbered_dims = true; }
};

// Node attributes.
inline ::onnx::AttributeProto* add_attr(::onnx::NodeProto* n, const std::string& name, ::onnx::AttributeProto::AttributeType t) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(t);
  return a;
}
inline void attr_int(::onnx::NodeProto* n, const std::string& name, int64_t v) { add_attr(n, name, ::onnx::AttributeProto::INT)->set_i(v); }
inline void attr_float(::onnx::NodeProto* n, const std::string& name, float v) { add_attr(n, name, ::onnx::AttributeProto::FLOAT)->set_f(v); }
inline void attr_str(::onnx::NodeProto* n, const std::string& name, const std::string& v) {
  add_attr(n, name, ::onnx::AttributeProto::STRING)->set_s(v);
}
inline void attr_ints(::onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = add_attr(n, name, ::onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}

// Row-major strides of dims (elements).
inline std::vector<int64_t> strides_of(const std::vector<int64_t>& d) {
  std::vector<int64_t> s(d.size());
  int64_t a = 1;
  for (size_t i = d.size(); i-- > 0;) {
    s[i] = a;
    a *= d[i];
  }
  return s;
}

// Calls f(index vector, flat offset) for every element of dims in row-major order.
inline void for_each_index(const std::vector<int64_t>& dims,
                           const std::function<void(const std::vector<int64_t>&, int64_t)>& f) {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  std::vector<int64_t> idx(dims.size(), 0);
  for (int64_t o = 0; o < n; ++o) {
    f(idx, o);
    for (size_t d = dims.size(); d-- > 0;) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
}

// The quiver::Error that f throws (a test failure when it throws none).
inline Error expect_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected quiver::Error";
  return Error(ErrorCode::Internal, "none");
}

}  // namespace quiver::test
