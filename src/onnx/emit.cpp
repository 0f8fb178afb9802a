#include "onnx/emit.hpp"
#include "onnx/ctype.hpp"

#include "onnx/ops/activation_attr.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace quiver::onnx {

Emit::Emit(const StepQuery& q) : q_(q), step_(std::make_unique<EmittedStep>()) {
  step_->reads_values.assign(q.node.num_inputs(), 0);
  step_->reads_data.assign(q.node.num_inputs(), 1);
  step_->fused = q.node.attrs().get_strings("_quiver_fused");
  for (const auto& o : q.outputs) {
    step_->out_dtypes.push_back(o.dtype);
    step_->out_shapes.push_back(o.shape);
  }
}

std::string Emit::functor(const std::string& base, const std::string& body) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: a stable name for the same text in every run
  for (unsigned char ch : body) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  std::string name = "op_" + base + "_" + hex;
  step_->defs.emplace_back(name, "struct " + name + " {\n  " + body + "\n};\n");
  return name;
}

const std::vector<int64_t>& Emit::dims_of(const ValueInfo& v, const char* what, size_t i) const {
  if (!v.shape) refuse(std::string("the rank of ") + what + " " + std::to_string(i) + " is not known at compile time");
  if (v.shape->size() > 8) refuse(std::string("rank ") + std::to_string(v.shape->size()) + " of " + what + " " +
                                  std::to_string(i) + " is above the emitted code's 8");
  return *v.shape;
}

int Emit::rank_in(size_t i) const { return static_cast<int>(dims_of(in(i), "input", i).size()); }
int Emit::rank_out(size_t i) const { return static_cast<int>(dims_of(out(i), "output", i).size()); }

std::string Emit::dim_expr(const ValueInfo& v, const char* io, size_t i, int axis) const {
  const auto& d = dims_of(v, io[0] == 'I' ? "input" : "output", i);
  if (axis < 0 || static_cast<size_t>(axis) >= d.size()) refuse("internal: axis out of range");
  if (d[static_cast<size_t>(axis)] >= 0) return std::to_string(d[static_cast<size_t>(axis)]);
  return std::string(io) + std::to_string(i) + ".d[" + std::to_string(axis) + "]";
}
std::string Emit::din(size_t i, int axis) const { return dim_expr(in(i), "I", i, axis); }
std::string Emit::dout(size_t i, int axis) const { return dim_expr(out(i), "O", i, axis); }

namespace {
std::string product_expr(const std::vector<std::string>& parts) {
  int64_t lit = 1;
  std::string sym;
  for (const auto& p : parts) {
    if (!p.empty() && (std::isdigit(static_cast<unsigned char>(p[0])) != 0)) lit *= std::stoll(p);
    else sym += (sym.empty() ? "" : " * ") + p;
  }
  if (sym.empty()) return std::to_string(lit);
  if (lit == 1) return sym.find('*') == std::string::npos ? sym : "(" + sym + ")";
  return "(" + std::to_string(lit) + " * " + sym + ")";
}
}  // namespace

std::string Emit::span_in(size_t i, int from, int to) const {
  std::vector<std::string> p;
  for (int a = from; a < to; ++a) p.push_back(din(i, a));
  return product_expr(p);
}
std::string Emit::span_out(size_t i, int from, int to) const {
  std::vector<std::string> p;
  for (int a = from; a < to; ++a) p.push_back(dout(i, a));
  return product_expr(p);
}
std::string Emit::numel_in(size_t i) const { return span_in(i, 0, rank_in(i)); }
std::string Emit::numel_out(size_t i) const { return span_out(i, 0, rank_out(i)); }
bool Emit::static_in(size_t i) const {
  for (int64_t d : dims_of(in(i), "input", i))
    if (d < 0) return false;
  return true;
}

std::string c_type_name(DType t) {
  switch (t) {
    case DType::F32: return "float";
    case DType::F64: return "double";
    case DType::I64: return "int64_t";
    case DType::I32: return "int32_t";
    case DType::I16: return "int16_t";
    case DType::I8: return "int8_t";
    case DType::U8: return "uint8_t";
    case DType::U16: return "uint16_t";
    case DType::U32: return "uint32_t";
    case DType::U64: return "uint64_t";
    case DType::Bool: return "bool";
    default: return "";
  }
}

std::string Emit::ctype(DType t) const {
  std::string c = c_type_name(t);
  if (c.empty()) refuse("element type " + std::string(dtype_name(t)) + " is not emitted");
  return c;
}

void Emit::set_dims(size_t k, const std::vector<std::string>& dims) {
  const std::string o = "O" + std::to_string(k);
  std::string s = o + ".r = " + std::to_string(dims.size()) + ";";
  for (size_t a = 0; a < dims.size(); ++a) s += " " + o + ".d[" + std::to_string(a) + "] = " + dims[a] + ";";
  shape(s + "\n");
}

std::string Emit::add_const(Tensor t) {
  step_->consts.push_back(std::make_shared<const Tensor>(std::move(t)));
  return "K" + std::to_string(step_->consts.size() - 1);
}

std::vector<int64_t> Emit::axes(int input_from, int rank) {
  std::vector<int64_t> axes;
  if (node().opset() >= input_from) {
    if (has_input(1)) {
      auto c = node().const_ints(1);
      if (!c) refuse("axes computed at run time");
      axes = *c;
      dims_only(1);
    }
  } else {
    axes = attrs().get_ints("axes");
  }
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t& a : axes) {
    if (a < -rank || a >= rank) refuse("axis " + std::to_string(a) + " out of range for rank " + std::to_string(rank));
    if (a < 0) a += rank;
    if (seen[static_cast<size_t>(a)]) refuse("axis " + std::to_string(a) + " repeated");
    seen[static_cast<size_t>(a)] = true;
  }
  return axes;
}

std::string Emit::add_packed_b(const float* b, int64_t K, int64_t N, int64_t ldb, int64_t bk, int64_t count,
                               int64_t step) {
  const int64_t one = packed_b_floats(K, N);
  Tensor p = Tensor::empty(DType::F32, {count * one});
  float* out = p.data<float>();
  std::fill(out, out + count * one, 0.0f);
  for (int64_t m = 0; m < count; ++m) {
    const float* bm = b + m * step;
    float* om = out + m * one;
    for (int64_t j = 0; j < N; ++j) {
      float* panel = om + j / kGemmPanel * kGemmPanel * K + j % kGemmPanel;
      for (int64_t k = 0; k < K; ++k) panel[k * kGemmPanel] = bm[k * ldb + j * bk];
    }
  }
  return add_const(std::move(p));
}

std::string cfloat(double v) {
  const float f = static_cast<float>(v);
  if (std::isnan(f)) return "std::numeric_limits<float>::quiet_NaN()";
  if (std::isinf(f)) return f > 0 ? "std::numeric_limits<float>::infinity()" : "-std::numeric_limits<float>::infinity()";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%af", static_cast<double>(f));
  return buf;
}

std::string cint(int64_t v) {
  if (v == INT64_MIN) return "(-9223372036854775807LL - 1)";
  return std::to_string(v) + "LL";
}

void register_all_emitters(EmitterRegistry& r);  // generated by src/onnx/CMakeLists.txt

const EmitterRegistry& EmitterRegistry::instance() {
  static const EmitterRegistry r = [] {
    EmitterRegistry x;
    register_all_emitters(x);
    return x;
  }();
  return r;
}

void EmitterRegistry::add(std::string domain, std::string op_type, Emitter emit) {
  emitters_.emplace_back((domain == "ai.onnx" ? std::string() : domain) + "::" + op_type, std::move(emit));
}

const Emitter* EmitterRegistry::find(const std::string& domain, const std::string& op_type) const {
  const std::string key = (domain == "ai.onnx" ? std::string() : domain) + "::" + op_type;
  for (const auto& [k, e] : emitters_)
    if (k == key) return &e;
  return nullptr;
}

std::vector<std::string> EmitterRegistry::list() const {
  std::vector<std::string> r;
  for (const auto& [k, e] : emitters_) r.push_back(k.rfind("::", 0) == 0 ? k.substr(2) : k);
  std::sort(r.begin(), r.end());
  return r;
}

namespace {
const char* const kRtActKinds[] = {"rt::kNone", "rt::kRelu", "rt::kLeakyRelu", "rt::kSigmoid", "rt::kTanh", "rt::kClip"};
}  // namespace

std::string emit_activation(const BuildContext& ctx) {
  const ActivationSpec a = fused_activation(ctx);
  return "rt::Act act;\nact.kind = " + std::string(kRtActKinds[static_cast<int>(a.kind)]) + ";\nact.alpha = " + cfloat(a.alpha) +
         ";\nact.beta = " + cfloat(a.beta) + ";\n";
}

std::string act_literal(const ActivationSpec& a) {
  return "rt::Act{" + std::string(kRtActKinds[static_cast<int>(a.kind)]) + ", " + cfloat(a.alpha) + ", " + cfloat(a.beta) + "}";
}

std::string emit_repro_activation(const BuildContext& ctx) {
  const ActivationSpec a = fused_activation(ctx);
  static const char* const kinds[] = {"rr::kNone", "rr::kRelu", "rr::kLeakyRelu", "rr::kSigmoid", "rr::kTanh", "rr::kClip"};
  return "rr::Act act;\nact.kind = " + std::string(kinds[static_cast<int>(a.kind)]) + ";\nact.alpha = " + cfloat(a.alpha) +
         ";\nact.beta = " + cfloat(a.beta) + ";\n";
}

Emitter exact(Emitter emit) {
  return [emit](Emit& e) {
    emit(e);
    e.bitwise();
  };
}

Emitter emit_math(const std::string& expr, const std::string& repro_fn) {
  const Emitter def = emit_unary(expr), repro = emit_unary("rr::" + repro_fn + "(v)", {DType::F32});
  return [def, repro](Emit& e) {
    if (!e.reproducible()) {
      def(e);
      return;
    }
    repro(e);
    e.bitwise();
  };
}

Emitter emit_unary(const std::string& expr, std::initializer_list<DType> types) {
  std::vector<DType> allowed(types);
  return [expr, allowed](Emit& e) {
    bool ok = false;
    for (DType t : allowed) ok = ok || e.in(0).dtype == t;
    if (!ok) e.refuse("element type " + std::string(dtype_name(e.in(0).dtype)) + " is not emitted for this op");
    const std::string t = e.tin(0);
    e.same_dims(0, 0);
    e.compute("const int64_t n = " + e.numel_in(0) + ";\nfor (int64_t j = 0; j < n; ++j) { const " + t +
              " v = x0[j]; y0[j] = static_cast<" + e.tout(0) + ">(" + expr + "); }\n");
  };
}

Emitter emit_binary(const std::string& expr, std::initializer_list<DType> types) {
  std::vector<DType> allowed(types);
  return [expr, allowed](Emit& e) {
    bool ok = false;
    for (DType t : allowed) ok = ok || e.in(0).dtype == t;
    if (!ok) e.refuse("element type " + std::string(dtype_name(e.in(0).dtype)) + " is not emitted for this op");
    e.rank_in(0);
    e.rank_in(1);
    e.rank_out(0);
    e.shape("if (!rt::broadcast(I0, I1, O0)) fail(\"inputs do not broadcast\");\n");
    const std::string f = e.functor(e.op(), e.tout(0) + " operator()(" + e.tin(0) + " a, " + e.tin(1) +
                                               " b) const { return static_cast<" + e.tout(0) + ">(" + expr + "); }");
    e.compute("rt::binary(x0, I0, x1, I1, y0, O0, " + f + "{});\n");
  };
}

Emitter emit_view(const std::string& dims_code, std::vector<size_t> value_inputs) {
  return [dims_code, value_inputs](Emit& e) {
    e.rank_out(0);
    e.shape(dims_code);
    for (size_t i : value_inputs) e.read_values(i);
    for (size_t i = 1; i < e.num_inputs(); ++i)
      if (e.has_input(i)) e.dims_only(i);
    e.view(0);
  };
}

}  // namespace quiver::onnx
