#include "quiver/onnx/onnx_model.hpp"

#include <cstdint>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <sstream>

#include "onnx/compiler.hpp"
#include "onnx/numerics.hpp"
#include "onnx/onnx_model_impl.hpp"
#include "onnx/plan.hpp"
#include "quiver/core/util.hpp"

namespace quiver::onnx {

void register_all_ops(OpRegistry& r);  // generated from src/onnx/ops/*.cpp

namespace {

void ensure_ops() {
  static std::once_flag once;
  std::call_once(once, [] { register_all_ops(OpRegistry::instance()); });
}

Shape shape_from(const ::onnx::ValueInfoProto& vi) {
  Shape s;
  if (!vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) return s;
  for (const auto& d : vi.type().tensor_type().shape().dim()) {
    if (d.has_dim_value()) s.emplace_back(d.dim_value());
    else s.push_back(Dim::sym(d.dim_param()));
  }
  return s;
}

class OnnxState final : public RunState {
 public:
  std::unique_ptr<PlanState> plan_state;
  std::vector<const Tensor*> input_ptrs;
};

}  // namespace

size_t state_arena_bytes(const RunState& state) {
  const auto* st = dynamic_cast<const OnnxState*>(&state);
  return st ? st->plan_state->arena_bytes() : 0;
}

std::unique_ptr<RunState> OnnxModel::make_state() const {
  auto st = std::make_unique<OnnxState>();
  st->plan_state = plan_->make_state();
  st->input_ptrs.resize(info_.inputs.size());
  return st;
}

void OnnxModel::check_inputs(std::span<const Tensor> inputs) const {
  if (inputs.size() != info_.inputs.size())
    throw_error(ErrorCode::InvalidArgument,
                "expected " + std::to_string(info_.inputs.size()) + " inputs, got " + std::to_string(inputs.size()),
                {info_.name});
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorInfo& ti = info_.inputs[i];
    const Tensor& t = inputs[i];
    if (t.dtype() != ti.dtype)
      throw_error(ErrorCode::InvalidArgument,
                  "expected dtype " + std::string(dtype_name(ti.dtype)) + ", got " + std::string(dtype_name(t.dtype())),
                  {info_.name, "", ti.name});
    if (rank_known_[i] && !shape_matches(ti.shape, t.dims()))
      throw_error(ErrorCode::InvalidArgument,
                  "expected shape " + shape_to_string(ti.shape) + ", got " + dims_to_string(t.dims()),
                  {info_.name, "", ti.name});
  }
}

void OnnxModel::run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const {
  check_inputs(inputs);
  auto& st = static_cast<OnnxState&>(state);
  for (size_t i = 0; i < inputs.size(); ++i) st.input_ptrs[i] = &inputs[i];
  if (st.plan_state->profile != state.profile) st.plan_state->set_profile(state.profile);
  plan_->run(st.input_ptrs, *st.plan_state);
  outputs.resize(plan_->outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& r = plan_->result(i, *st.plan_state);
    outputs[i].ensure(r.dtype(), r.dims());
    outputs[i].copy_from(r);
  }
}

void OnnxModel::describe(std::ostream& os) const {
  Model::describe(os);
  os << "ir_version: " << summary_.ir_version << "\n";
  if (!summary_.producer.empty()) os << "producer: " << summary_.producer << "\n";
  os << "opsets:";
  for (const auto& [d, v] : summary_.opsets) os << " " << (d.empty() ? "ai.onnx" : d) << "=" << v;
  os << "\nparameters: " << summary_.parameter_count << " (" << summary_.parameter_bytes << " bytes)\n";
  os << "steps after compilation: " << plan_->steps.size() << ", activation slots: " << plan_->num_slots << "\n";
  if (!plan_->cpu_only) describe_placement(os);
  else if (plan_->target != "cpu") os << "target: " << plan_->target << "\n";
  os << "operators:\n";
  for (const auto& [op, n] : summary_.op_counts) os << "  " << op << " " << n << "\n";
  os << "unsupported operators: " << (summary_.unsupported_ops.empty() ? "none" : "") << "\n";
  for (const auto& u : summary_.unsupported_ops) os << "  " << u << "\n";
}

void OnnxModel::describe_placement(std::ostream& os) const {
  // What the compiler chose for the target, as recorded in the plan.
  size_t on_device = 0;
  std::map<std::pair<std::string, std::string>, int> on_cpu;  // (op, why) -> steps
  for (const auto& st : plan_->steps) {
    if (st.placement == Placement::Device) ++on_device;
    else on_cpu[{st.op_type, st.why_cpu}]++;
  }
  os << "target: " << plan_->target << " (" << on_device << " steps on the device, "
     << plan_->steps.size() - on_device << " on the CPU)\n";
  os << "steps with no device kernel (their CPU kernels run them, as placed at load; `quiver bench --profile` "
        "marks them '(host)'):"
     << (on_cpu.empty() ? " none" : "") << "\n";
  for (const auto& [k, n] : on_cpu) os << "  " << k.first << " " << n << (k.second.empty() ? "" : ": " + k.second) << "\n";
}

namespace {

void count_ops(const ::onnx::GraphProto& g, ModelSummary& s) {
  // Informational totals; dims are not validated yet (the loader rejects bad tensors with a clear
  // error), so a negative or overflowing element count is simply not counted.
  auto count_tensor = [&](const ::onnx::TensorProto& t) {
    int64_t n = 1;
    for (auto d : t.dims())
      if (d < 0 || __builtin_mul_overflow(n, d, &n)) return;
    int64_t bytes = 0;
    auto dt = dtype_from_onnx(t.data_type());
    if (dt && __builtin_mul_overflow(n, static_cast<int64_t>(dtype_size(*dt)), &bytes)) return;
    if (__builtin_add_overflow(s.parameter_count, n, &s.parameter_count)) s.parameter_count = INT64_MAX;
    if (__builtin_add_overflow(s.parameter_bytes, bytes, &s.parameter_bytes)) s.parameter_bytes = INT64_MAX;
  };
  for (const auto& t : g.initializer()) count_tensor(t);
  for (const auto& n : g.node()) {
    std::string key = (n.domain().empty() || n.domain() == "ai.onnx" ? "" : n.domain() + "::") + n.op_type();
    s.op_counts[key]++;
    for (const auto& a : n.attribute()) {
      if (a.has_t() && n.op_type() == "Constant") count_tensor(a.t());
      if (a.has_g()) count_ops(a.g(), s);
      for (const auto& sg : a.graphs()) count_ops(sg, s);
    }
  }
}

::onnx::ModelProto parse_model(const std::string& bytes, const std::string& what) {
  ::onnx::ModelProto mp;
  if (bytes.empty()) throw_error(ErrorCode::Parse, "model file is empty", {what});
  if (!mp.ParseFromString(bytes))
    throw_error(ErrorCode::Parse, "not a valid ONNX model (protobuf parse failed; truncated or corrupt?)", {what});
  if (!mp.has_graph()) throw_error(ErrorCode::Parse, "ONNX model has no graph", {what});
  return mp;
}

ModelSummary summarize(const ::onnx::ModelProto& mp) {
  ensure_ops();
  ModelSummary s;
  s.ir_version = mp.ir_version();
  s.producer = mp.producer_name() + (mp.producer_version().empty() ? "" : " " + mp.producer_version());
  s.producer_name = mp.producer_name();
  s.producer_version = mp.producer_version();
  s.domain = mp.domain();
  s.doc_string = mp.doc_string();
  s.graph_name = mp.graph().name();
  s.graph_doc_string = mp.graph().doc_string();
  s.model_version = mp.model_version();
  for (const auto& p : mp.metadata_props()) s.metadata_props[p.key()] = p.value();
  for (const auto& o : mp.opset_import()) s.opsets[o.domain() == "ai.onnx" ? "" : o.domain()] = o.version();
  count_ops(mp.graph(), s);
  s.unsupported_ops = find_unsupported(mp.graph(), false);
  return s;
}

}  // namespace

std::shared_ptr<OnnxModel> compile_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                              const LoadOptions& options, const CompileOptions& compile,
                                              const Target& target) {
  ensure_ops();
  const std::string what = options.name.empty() ? "<memory>" : options.name;
  ::onnx::ModelProto mp = parse_model(bytes, what);
  ModelSummary summary = summarize(mp);
  const auto& g = mp.graph();
  ModelInfo info;
  info.name = options.name.empty() ? (g.name().empty() ? "model" : g.name()) : options.name;
  info.backend = "onnx";
  info.format = "onnx";
  info.version = options.version;
  info.sha256 = sha256_hex(bytes);
  if (!summary.unsupported_ops.empty()) {
    std::string list;
    for (const auto& u : find_unsupported(g, true)) list += (list.empty() ? "" : ", ") + u;
    throw_error(ErrorCode::Unsupported, "unsupported operators: " + list, {info.name});
  }
  std::set<std::string> inits;
  for (const auto& i : g.initializer()) inits.insert(i.name());
  std::vector<ValueInfo> input_infos;
  std::vector<bool> rank_known;
  for (const auto& in : g.input()) {
    if (inits.count(in.name())) continue;
    TensorInfo ti;
    ti.name = in.name();
    if (!in.type().has_tensor_type())
      throw_error(ErrorCode::Unsupported, "graph input is not a tensor (sequence/map inputs are not supported)",
                  {info.name, "", in.name()});
    auto dt = dtype_from_onnx(in.type().tensor_type().elem_type());
    if (!dt)
      throw_error(ErrorCode::Unsupported,
                  "unsupported input element type " + std::to_string(in.type().tensor_type().elem_type()),
                  {info.name, "", in.name()});
    ti.dtype = *dt;
    ti.shape = shape_from(in);
    rank_known.push_back(in.type().tensor_type().has_shape());
    ValueInfo vi;
    vi.dtype = ti.dtype;
    if (rank_known.back()) {
      std::vector<int64_t> d;
      for (const auto& x : ti.shape) d.push_back(x.value);
      vi.shape = d;
    }
    input_infos.push_back(vi);
    info.inputs.push_back(std::move(ti));
  }
  for (const auto& out : g.output()) {
    TensorInfo ti;
    ti.name = out.name();
    if (out.type().has_tensor_type()) {
      auto dt = dtype_from_onnx(out.type().tensor_type().elem_type());
      if (dt) ti.dtype = *dt;
    }
    ti.shape = shape_from(out);
    info.outputs.push_back(std::move(ti));
  }
  CompileEnv env;
  env.model_name = info.name;
  env.base_dir = base_dir;
  env.options = compile;
  env.target = target;
  for (const auto& o : mp.opset_import()) env.opsets[o.domain() == "ai.onnx" ? "" : o.domain()] = o.version();
  auto plan = compile_graph(g, env, input_infos);
  return std::make_shared<OnnxModel>(std::move(info), std::move(plan), std::move(rank_known), std::move(summary));
}

std::shared_ptr<OnnxModel> compile_onnx_file(const std::string& path, const LoadOptions& options,
                                             const CompileOptions& compile, const Target& target) {
  const std::string bytes = read_file(path);
  LoadOptions opts = options;
  if (opts.name.empty()) {
    std::filesystem::path p(path);
    opts.name = p.stem() == "model" && p.has_parent_path() ? p.parent_path().filename().string() : p.stem().string();
  }
  try {
    auto m = compile_onnx_bytes(bytes, std::filesystem::path(path).parent_path().string(), opts, compile, target);
    m->mutable_info().path = path;
    return m;
  } catch (const Error& e) {
    throw e.with_context({opts.name, "", "", path});
  }
}

namespace {
// Device choice belongs to the backend layer (src/backends), which compiles for the device's target
// and hands the plan to its executor; this loader compiles for the CPU only and says so.
void expect_cpu(const LoadOptions& options) {
  auto it = options.params.find("device");
  if (it == options.params.end() || it->second.empty() || it->second == "cpu") return;
  throw_error(ErrorCode::InvalidArgument,
              "quiver::onnx::load_onnx runs models on the CPU; device '" + it->second +
                  "' is chosen by the backend layer: load with quiver::load_model or quiver::backends::load_onnx",
              {options.name});
}
}  // namespace

std::shared_ptr<const Model> load_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                             const LoadOptions& options, const CompileOptions& compile) {
  expect_cpu(options);
  return compile_onnx_bytes(bytes, base_dir, options, compile, cpu_target(options));
}

std::shared_ptr<const Model> load_onnx(const std::string& path, const LoadOptions& options,
                                       const CompileOptions& compile) {
  expect_cpu(options);
  return compile_onnx_file(path, options, compile, cpu_target(options));
}

ModelSummary summarize_onnx(const std::string& path) { return summarize(parse_model(read_file(path), path)); }
ModelSummary summarize_onnx_bytes(const std::string& bytes, const std::string& what) {
  return summarize(parse_model(bytes, what));
}

std::vector<std::string> supported_ops() {
  ensure_ops();
  return OpRegistry::instance().list();
}

}  // namespace quiver::onnx
