// quiver.InferenceSession: ONNX Runtime's Python surface over any model Quiver loads.
//
// One loaded Model is shared by every thread calling run(); each concurrent call borrows a RunState
// from a small pool (created on demand, kept for reuse), so one session serves many Python threads
// and the steady state allocates only the output arrays. The GIL is released while the model runs.
#include <pybind11/stl.h>

#include <map>
#include <mutex>
#include <optional>

#include "python/common.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/core/util.hpp"
#include "quiver/onnx/onnx_model.hpp"

namespace quiver::python {

namespace {

// ---- ONNX Runtime's option objects (the knobs Quiver has; the others are accepted and documented)
enum class GraphOptimizationLevel { ORT_DISABLE_ALL = 0, ORT_ENABLE_BASIC = 1, ORT_ENABLE_EXTENDED = 2, ORT_ENABLE_ALL = 99 };
enum class ExecutionMode { ORT_SEQUENTIAL = 0, ORT_PARALLEL = 1 };

struct SessionOptions {
  int intra_op_num_threads = 0;  // 0: Quiver's default (1 thread per call; parallelism comes from callers)
  int inter_op_num_threads = 0;
  GraphOptimizationLevel graph_optimization_level = GraphOptimizationLevel::ORT_ENABLE_ALL;
  ExecutionMode execution_mode = ExecutionMode::ORT_SEQUENTIAL;
  int log_severity_level = 2;
  int log_verbosity_level = 0;
  std::string logid;
  std::map<std::string, std::string> config;  // LoadOptions.params, passed through to the backend
};

struct RunOptions {
  int log_severity_level = 2;
  int log_verbosity_level = 0;
  std::string run_tag;
  bool terminate = false;
  std::map<std::string, std::string> config;
};

struct ModelMetadata {
  // ONNX Runtime's fields
  std::string producer_name, graph_name, domain, description, graph_description;
  int64_t version = 0;
  std::map<std::string, std::string> custom_metadata_map;
  // Quiver's provenance
  std::string name, sha256, model_version, backend, format, device, path;
};

// ---- providers: ONNX Runtime's names and Quiver's device strings
constexpr const char* kCpu = "CPUExecutionProvider";
constexpr const char* kCuda = "CUDAExecutionProvider";

std::vector<std::string> available_providers() {
#ifdef QUIVER_PYTHON_HAVE_CUDA
  return {kCuda, kCpu};
#else
  return {kCpu};
#endif
}

std::string option_string(py::handle v) {
  return py::isinstance<py::str>(v) ? v.cast<std::string>() : py::str(v).cast<std::string>();
}

// The device (LoadOptions.params["device"]) for a providers list, ONNX Runtime style: the first
// provider Quiver knows decides; unknown ones are skipped with a warning, as ONNX Runtime skips
// providers it was built without. CUDA followed by CPU means "CUDA when there is a device" (auto).
std::optional<std::string> resolve_device(py::handle providers, py::handle provider_options) {
  if (providers.is_none()) return std::nullopt;
  if (py::isinstance<py::str>(providers))
    throw_error(ErrorCode::InvalidArgument, "providers must be a list, e.g. ['CPUExecutionProvider']");
  std::vector<std::pair<std::string, py::dict>> list;
  for (py::handle p : providers) {
    if (py::isinstance<py::tuple>(p) && py::len(p) == 2) {
      auto t = py::reinterpret_borrow<py::tuple>(p);
      list.emplace_back(t[0].cast<std::string>(), py::dict(py::object(t[1])));
    } else {
      list.emplace_back(p.cast<std::string>(), py::dict());
    }
  }
  if (!provider_options.is_none()) {
    size_t i = 0;
    for (py::handle o : provider_options) {
      if (i >= list.size()) throw_error(ErrorCode::InvalidArgument, "provider_options has more entries than providers");
      for (auto kv : py::dict(py::reinterpret_borrow<py::object>(o))) list[i].second[kv.first] = kv.second;
      ++i;
    }
  }
  if (list.empty()) return std::nullopt;
  std::optional<std::string> device;
  bool cuda_first = false;
  for (auto& [name, opts] : list) {
    std::string d;
    if (name == kCpu || name == "cpu") d = "cpu";
    else if (name == kCuda) d = "cuda:" + (opts.contains("device_id") ? option_string(opts["device_id"]) : std::string("0"));
    else if (name == "cuda" || name.rfind("cuda:", 0) == 0 || name == "auto" || name == "gpu-emulator") d = name;
    if (d.empty()) {
      PyErr_WarnEx(PyExc_UserWarning, ("quiver: provider '" + name + "' is not available; skipped").c_str(), 1);
      continue;
    }
    if (!device) {
      device = d;
      cuda_first = name == kCuda;
    } else if (cuda_first && d == "cpu" && *device == "cuda:0") {
      device = "auto";  // ONNX Runtime's ['CUDAExecutionProvider', 'CPUExecutionProvider']
    }
  }
  if (!device) {
    std::string names;
    for (auto& a : available_providers()) names += (names.empty() ? "" : ", ") + a;
    throw_error(ErrorCode::InvalidArgument, "none of the requested providers is available; available: " + names);
  }
  return device;
}

// ---- the session
class InferenceSession {
 public:
  InferenceSession(py::object source, std::optional<SessionOptions> so, py::object providers, py::object provider_options,
                   std::string backend)
      : options_(so.value_or(SessionOptions{})), backend_(std::move(backend)) {
    if (py::isinstance<py::bytes>(source)) {
      bytes_ = source.cast<std::string>();
    } else {
      path_ = py::module_::import("os").attr("fspath")(source).cast<std::string>();
    }
    load(resolve_device(providers, provider_options));
  }

  py::list run(py::handle output_names, py::handle input_feed, std::optional<RunOptions> run_options) {
    StateLease lease(*this);  // the model (set_providers may swap it meanwhile) and a run state of it
    const Model& model = lease.model();
    if (run_options && run_options->terminate)
      throw_error(ErrorCode::Cancelled, "run_options.terminate is set", {model.info().name});
    std::vector<InputArray> held(model.info().inputs.size());
    feed(model, input_feed, held);
    std::vector<size_t> selected = select_outputs(model, output_names);
    std::vector<Tensor> inputs(held.size());
    for (size_t i = 0; i < held.size(); ++i) inputs[i] = std::move(held[i].tensor);
    std::vector<Tensor> outputs;
    {
      py::gil_scoped_release nogil;
      model.run(inputs, outputs, lease.state());
    }
    py::list result(selected.size());
    for (size_t i = 0; i < selected.size(); ++i) result[i] = to_numpy(std::move(outputs[selected[i]]));
    return result;
  }

  py::list get_inputs() const { return node_args(current()->info().inputs); }
  py::list get_outputs() const { return node_args(current()->info().outputs); }
  py::list get_overridable_initializers() const { return py::list(); }

  // Computed once per loaded model (the ONNX file's metadata is read again for it).
  ModelMetadata get_modelmeta() {
    std::shared_ptr<const Model> m = current();
    std::lock_guard<std::mutex> lock(meta_mu_);
    if (!meta_ || meta_model_ != m.get()) {
      meta_ = make_metadata(*m);
      meta_model_ = m.get();
    }
    return *meta_;
  }

  std::vector<std::string> get_providers() const {
    const std::string d = current()->info().device;
    if (d.empty()) return {kCpu};
    if (d.rfind("cuda", 0) == 0) return {kCuda, kCpu};
    return {d, kCpu};
  }
  py::dict get_provider_options() const {
    py::dict all;
    const std::string d = current()->info().device;
    for (const auto& p : get_providers()) {
      py::dict o;
      if (p == kCuda) o["device_id"] = py::str(d.find(':') == std::string::npos ? "0" : d.substr(d.find(':') + 1));
      all[py::str(p)] = o;
    }
    return all;
  }
  void set_providers(py::object providers, py::object provider_options) {
    load(resolve_device(providers, provider_options));
  }
  const SessionOptions& get_session_options() const { return options_; }
  std::shared_ptr<const Model> current() const {
    std::lock_guard<std::mutex> lock(states_mu_);
    return model_;
  }

  std::string repr() const {
    std::shared_ptr<const Model> m = current();
    const ModelInfo& mi = m->info();
    return "<quiver.InferenceSession " + mi.name + " (" + mi.backend + ", " + mi.format + ") on " +
           (mi.device.empty() ? std::string("cpu") : mi.device) + ">";
  }

  // Inputs by the model's order from a feed dict (GIL held). Errors name the input.
  static void feed(const Model& model, py::handle input_feed, std::vector<InputArray>& held) {
    const ModelInfo& mi = model.info();
    py::object dict = py::reinterpret_borrow<py::object>(input_feed);
    if (!PyDict_Check(dict.ptr())) {
      if (!PyObject_HasAttrString(dict.ptr(), "keys"))
        throw_error(ErrorCode::InvalidArgument, "input_feed must be a dict {input name: numpy array}", {mi.name});
      dict = py::dict(dict);
    }
    PyObject *key = nullptr, *value = nullptr;
    Py_ssize_t pos = 0;
    size_t seen = 0;
    while (PyDict_Next(dict.ptr(), &pos, &key, &value)) {
      if (!PyUnicode_Check(key)) throw_error(ErrorCode::InvalidArgument, "input names must be str", {mi.name});
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(key, &n);
      if (!s) throw py::error_already_set();
      std::string_view name(s, static_cast<size_t>(n));
      size_t i = 0;
      while (i < mi.inputs.size() && mi.inputs[i].name != name) ++i;
      if (i == mi.inputs.size())
        throw_error(ErrorCode::InvalidArgument, "unknown input '" + std::string(name) + "'; the model's inputs: " + names(mi.inputs),
                    {mi.name, "", std::string(name)});
      try {
        to_tensor(value, name, mi.inputs[i].dtype, held[i]);
      } catch (const Error& e) {
        throw e.with_context({mi.name});
      }
      ++seen;
    }
    if (seen < mi.inputs.size()) {
      std::string missing;
      for (size_t i = 0; i < held.size(); ++i)
        if (!held[i].tensor.defined()) missing += (missing.empty() ? "'" : ", '") + mi.inputs[i].name + "'";
      throw_error(ErrorCode::InvalidArgument, "missing input " + missing + "; the model's inputs: " + names(mi.inputs),
                  {mi.name, "", missing.substr(1, missing.find('\'', 1) - 1)});
    }
  }

 private:
  // The current model and a RunState of it, borrowed for one call (a state is created when every
  // pooled one is in use). A state goes back to the pool only if the model was not replaced meanwhile.
  class StateLease {
   public:
    explicit StateLease(InferenceSession& s) : s_(s) {
      std::lock_guard<std::mutex> lock(s_.states_mu_);
      model_ = s_.model_;
      if (!s_.states_.empty()) {
        state_ = std::move(s_.states_.back());
        s_.states_.pop_back();
      }
    }
    ~StateLease() {
      std::lock_guard<std::mutex> lock(s_.states_mu_);
      if (state_ && s_.model_ == model_) s_.states_.push_back(std::move(state_));
    }
    StateLease(const StateLease&) = delete;
    StateLease& operator=(const StateLease&) = delete;
    const Model& model() const { return *model_; }
    RunState& state() {
      if (!state_) state_ = model_->make_state();
      return *state_;
    }

   private:
    InferenceSession& s_;
    std::shared_ptr<const Model> model_;
    std::unique_ptr<RunState> state_;
  };

  static std::string names(const std::vector<TensorInfo>& ts) {
    std::string s;
    for (const auto& t : ts) s += (s.empty() ? "" : ", ") + t.name;
    return s;
  }

  static std::vector<size_t> select_outputs(const Model& model, py::handle output_names) {
    const ModelInfo& mi = model.info();
    std::vector<size_t> sel;
    if (output_names.is_none()) {
      for (size_t i = 0; i < mi.outputs.size(); ++i) sel.push_back(i);
      return sel;
    }
    if (py::isinstance<py::str>(output_names))
      throw_error(ErrorCode::InvalidArgument, "output_names must be a list of names or None", {mi.name});
    for (py::handle h : output_names) {
      std::string name = h.cast<std::string>();
      size_t i = 0;
      while (i < mi.outputs.size() && mi.outputs[i].name != name) ++i;
      if (i == mi.outputs.size())
        throw_error(ErrorCode::InvalidArgument, "unknown output '" + name + "'; the model's outputs: " + names(mi.outputs),
                    {mi.name, "", name});
      for (size_t j : sel)
        if (j == i) throw_error(ErrorCode::InvalidArgument, "output '" + name + "' is asked for twice", {mi.name, "", name});
      sel.push_back(i);
    }
    return sel;
  }

  static py::list node_args(const std::vector<TensorInfo>& ts) {
    py::list l;
    for (const auto& t : ts) l.append(py::cast(NodeArg{t.name, t.shape, t.dtype}));
    return l;
  }

  void load(std::optional<std::string> device) {
    LoadOptions lo;
    lo.params = options_.config;
    if (device) lo.params["device"] = *device;
    if (options_.intra_op_num_threads > 0) lo.intra_op_threads = options_.intra_op_num_threads;
    std::shared_ptr<const Model> m;
    {
      py::gil_scoped_release nogil;
      if (bytes_) {
        if (!backend_.empty() && backend_ != "onnx")
          throw_error(ErrorCode::InvalidArgument, "models given as bytes are ONNX models; backend '" + backend_ + "' needs a file");
        m = backends::load_onnx_bytes(*bytes_, "", lo);  // the device choice lives there
      } else {
        m = load_model(path_, lo, backend_);
      }
    }
    std::lock_guard<std::mutex> lock(states_mu_);
    model_ = std::move(m);
    states_.clear();
  }

  ModelMetadata make_metadata(const Model& model) const {
    const ModelInfo& mi = model.info();
    ModelMetadata md;
    md.name = mi.name;
    md.sha256 = mi.sha256;
    md.model_version = mi.version;
    md.backend = mi.backend;
    md.format = mi.format;
    md.device = mi.device.empty() ? "cpu" : mi.device;
    md.path = mi.path;
    md.graph_name = mi.name;
    if (mi.format == "onnx") {
      onnx::ModelSummary s = bytes_ ? onnx::summarize_onnx_bytes(*bytes_) : onnx::summarize_onnx(path_);
      md.producer_name = s.producer_name;
      md.graph_name = s.graph_name;
      md.domain = s.domain;
      md.description = s.doc_string;
      md.graph_description = s.graph_doc_string;
      md.version = s.model_version;
      md.custom_metadata_map = s.metadata_props;
    } else {
      md.producer_name = mi.format;
    }
    return md;
  }

  SessionOptions options_;
  std::string backend_;
  std::string path_;
  std::optional<std::string> bytes_;
  mutable std::mutex states_mu_;  // model_ and the states of it
  std::shared_ptr<const Model> model_;
  std::vector<std::unique_ptr<RunState>> states_;
  std::mutex meta_mu_;
  std::optional<ModelMetadata> meta_;
  const Model* meta_model_ = nullptr;
};

std::string node_arg_repr(const NodeArg& a) {
  std::string s = "NodeArg(name='" + a.name + "', type='" + ort_type(a.dtype) + "', shape=[";
  for (size_t i = 0; i < a.shape.size(); ++i) {
    if (i) s += ", ";
    if (a.shape[i].is_fixed()) s += std::to_string(a.shape[i].value);
    else if (!a.shape[i].symbol.empty()) s += "'" + a.shape[i].symbol + "'";
    else s += "None";
  }
  return s + "])";
}

// Seconds per call of the C++ Session::run on the same model and inputs (bench/python: the
// Python layer's overhead is the difference). Not part of the public API.
double bench_cpp_session_run(const InferenceSession& sess, py::handle input_feed, int64_t iterations) {
  std::shared_ptr<const Model> model = sess.current();
  std::vector<InputArray> held(model->info().inputs.size());
  InferenceSession::feed(*model, input_feed, held);
  std::vector<Tensor> inputs;
  for (auto& h : held) inputs.push_back(h.tensor);
  py::gil_scoped_release nogil;
  Session session(model);
  std::vector<Tensor> outputs;
  session.run(inputs, outputs);  // warm: outputs allocated once, as a C++ caller reuses them
  const int64_t t0 = now_ns();
  for (int64_t i = 0; i < iterations; ++i) session.run(inputs, outputs);
  return static_cast<double>(now_ns() - t0) * 1e-9 / static_cast<double>(std::max<int64_t>(iterations, 1));
}

}  // namespace

void register_session(py::module_& m) {
  py::enum_<GraphOptimizationLevel>(m, "GraphOptimizationLevel",
                                    "ONNX Runtime's graph optimisation levels. Accepted for compatibility: Quiver "
                                    "always compiles the graph the same way (constant folding and fusions).")
      .value("ORT_DISABLE_ALL", GraphOptimizationLevel::ORT_DISABLE_ALL)
      .value("ORT_ENABLE_BASIC", GraphOptimizationLevel::ORT_ENABLE_BASIC)
      .value("ORT_ENABLE_EXTENDED", GraphOptimizationLevel::ORT_ENABLE_EXTENDED)
      .value("ORT_ENABLE_ALL", GraphOptimizationLevel::ORT_ENABLE_ALL);
  py::enum_<ExecutionMode>(m, "ExecutionMode",
                           "ONNX Runtime's execution modes. Accepted for compatibility: Quiver runs a graph's "
                           "steps in order; parallelism comes from calling one session from many threads.")
      .value("ORT_SEQUENTIAL", ExecutionMode::ORT_SEQUENTIAL)
      .value("ORT_PARALLEL", ExecutionMode::ORT_PARALLEL);

  py::class_<SessionOptions>(m, "SessionOptions",
                             "Options for loading a model (ONNX Runtime's SessionOptions).\n\n"
                             "intra_op_num_threads sets the threads one call may use (0: Quiver's default, one).\n"
                             "add_session_config_entry(key, value) passes a load parameter to the backend\n"
                             "(quiver::LoadOptions.params), e.g. 'device_streams' or the forest's 'round_end';\n"
                             "numerics='reproducible' asks for bitwise-reproducible numerics where the engine has them.\n"
                             "inter_op_num_threads, graph_optimization_level, execution_mode and the log levels are\n"
                             "accepted so ONNX Runtime code runs unchanged, and have no effect.")
      .def(py::init<>())
      .def_readwrite("intra_op_num_threads", &SessionOptions::intra_op_num_threads)
      .def_readwrite("inter_op_num_threads", &SessionOptions::inter_op_num_threads)
      .def_readwrite("graph_optimization_level", &SessionOptions::graph_optimization_level)
      .def_readwrite("execution_mode", &SessionOptions::execution_mode)
      .def_readwrite("log_severity_level", &SessionOptions::log_severity_level)
      .def_readwrite("log_verbosity_level", &SessionOptions::log_verbosity_level)
      .def_readwrite("logid", &SessionOptions::logid)
      .def_property(
          "numerics",
          [](const SessionOptions& o) {
            auto it = o.config.find("numerics");
            return it == o.config.end() ? std::string("default") : it->second;
          },
          [](SessionOptions& o, const std::string& v) {
            if (v == "default") o.config.erase("numerics");
            else o.config["numerics"] = v;
          },
          "'default' or 'reproducible' (load parameter 'numerics'; a build whose engine does not have a mode refuses it)")
      .def(
          "add_session_config_entry",
          [](SessionOptions& o, const std::string& k, const std::string& v) { o.config[k] = v; }, py::arg("key"),
          py::arg("value"), "Sets a load parameter passed to the backend (quiver::LoadOptions.params).")
      .def(
          "get_session_config_entry",
          [](const SessionOptions& o, const std::string& k) {
            auto it = o.config.find(k);
            if (it == o.config.end()) throw_error(ErrorCode::NotFound, "no session config entry '" + k + "'");
            return it->second;
          },
          py::arg("key"))
      .def_property_readonly("config", [](const SessionOptions& o) { return o.config; },
                             "All load parameters set with add_session_config_entry (a copy).");

  py::class_<RunOptions>(m, "RunOptions",
                         "Per-call options (ONNX Runtime's RunOptions). terminate=True makes run() raise "
                         "quiver.Cancelled instead of starting; a call already running finishes. The rest is "
                         "accepted for compatibility.")
      .def(py::init<>())
      .def_readwrite("log_severity_level", &RunOptions::log_severity_level)
      .def_readwrite("log_verbosity_level", &RunOptions::log_verbosity_level)
      .def_readwrite("run_tag", &RunOptions::run_tag)
      .def_readwrite("terminate", &RunOptions::terminate)
      .def(
          "add_run_config_entry", [](RunOptions& o, const std::string& k, const std::string& v) { o.config[k] = v; },
          py::arg("key"), py::arg("value"))
      .def(
          "get_run_config_entry",
          [](const RunOptions& o, const std::string& k) {
            auto it = o.config.find(k);
            if (it == o.config.end()) throw_error(ErrorCode::NotFound, "no run config entry '" + k + "'");
            return it->second;
          },
          py::arg("key"));

  py::class_<NodeArg>(m, "NodeArg", "A model input or output: name, shape (ints, names of symbolic dims, None), type.")
      .def_readonly("name", &NodeArg::name)
      .def_property_readonly("shape", [](const NodeArg& a) { return shape_to_python(a.shape); })
      .def_property_readonly("type", [](const NodeArg& a) { return ort_type(a.dtype); },
                             "ONNX Runtime's type string, e.g. 'tensor(float)'")
      .def("__repr__", &node_arg_repr);

  py::class_<ModelMetadata>(m, "ModelMetadata",
                            "ONNX Runtime's model metadata (producer_name, graph_name, domain, description,\n"
                            "graph_description, version, custom_metadata_map) plus Quiver's provenance: name,\n"
                            "sha256 (of the model file), model_version (repository version; '' for a file),\n"
                            "backend ('onnx', 'forest', ...), format, device ('cpu', 'cuda:0', ...) and path.")
      .def_readonly("producer_name", &ModelMetadata::producer_name)
      .def_readonly("graph_name", &ModelMetadata::graph_name)
      .def_readonly("domain", &ModelMetadata::domain)
      .def_readonly("description", &ModelMetadata::description)
      .def_readonly("graph_description", &ModelMetadata::graph_description)
      .def_readonly("version", &ModelMetadata::version)
      .def_readonly("custom_metadata_map", &ModelMetadata::custom_metadata_map)
      .def_readonly("name", &ModelMetadata::name)
      .def_readonly("sha256", &ModelMetadata::sha256)
      .def_readonly("model_version", &ModelMetadata::model_version)
      .def_readonly("backend", &ModelMetadata::backend)
      .def_readonly("format", &ModelMetadata::format)
      .def_readonly("device", &ModelMetadata::device)
      .def_readonly("path", &ModelMetadata::path)
      .def("__repr__", [](const ModelMetadata& md) {
        return "<quiver.ModelMetadata " + md.name + " sha256=" + md.sha256.substr(0, 12) + "... backend=" + md.backend +
               " device=" + md.device + ">";
      });

  py::class_<InferenceSession>(
      m, "InferenceSession",
      "A loaded model with ONNX Runtime's InferenceSession surface.\n\n"
      "InferenceSession(path_or_bytes, sess_options=None, providers=None, provider_options=None, backend='')\n\n"
      "path_or_bytes: any file Quiver loads (ONNX, XGBoost JSON/UBJ, LightGBM text, TMVA XML, a\n"
      "'*.remote.json' remote model), or the bytes of an ONNX model. providers: ONNX Runtime's names\n"
      "('CPUExecutionProvider', 'CUDAExecutionProvider' with {'device_id': N}) or Quiver's devices\n"
      "('cpu', 'cuda', 'cuda:N', 'auto'). backend forces a backend by name ('onnx', 'forest').\n"
      "One session may be used from many threads at once; the GIL is released while the model runs.")
      .def(py::init<py::object, std::optional<SessionOptions>, py::object, py::object, std::string>(),
           py::arg("path_or_bytes"), py::arg("sess_options") = py::none(), py::arg("providers") = py::none(),
           py::arg("provider_options") = py::none(), py::kw_only(), py::arg("backend") = "")
      .def("run", &InferenceSession::run, py::arg("output_names"), py::arg("input_feed"),
           py::arg("run_options") = py::none(),
           "Runs the model. output_names: names of the outputs to return, in that order (None: all).\n"
           "input_feed: {input name: numpy array}. Returns a list of numpy arrays that own their memory.\n\n"
           "Arrays of the input's dtype that are C-contiguous are read in place (no copy); other layouts\n"
           "of that dtype are copied into a contiguous array; another dtype raises quiver.InvalidArgument\n"
           "naming the input (as ONNX Runtime does; lists are converted to the input's dtype).\n"
           "Wrong names, missing inputs and wrong shapes raise quiver.InvalidArgument naming the input.")
      .def("get_inputs", &InferenceSession::get_inputs, "The model's inputs (NodeArg), in order.")
      .def("get_outputs", &InferenceSession::get_outputs, "The model's outputs (NodeArg), in order.")
      .def("get_overridable_initializers", &InferenceSession::get_overridable_initializers,
           "Always empty: initializers cannot be overridden at run time in Quiver.")
      .def("get_modelmeta", &InferenceSession::get_modelmeta,
           "ONNX Runtime's model metadata plus Quiver's provenance (sha256, model_version, backend, device).")
      .def("get_providers", &InferenceSession::get_providers, "Where the model runs, in ONNX Runtime's provider names.")
      .def("get_provider_options", &InferenceSession::get_provider_options)
      .def("set_providers", &InferenceSession::set_providers, py::arg("providers") = py::none(),
           py::arg("provider_options") = py::none(), "Reloads the model for other providers (a device change).")
      .def("get_session_options", &InferenceSession::get_session_options, py::return_value_policy::copy)
      .def("__repr__", &InferenceSession::repr);

  m.def("get_available_providers", &available_providers,
        "Providers this build has, in ONNX Runtime's names (CUDA when the CUDA kernels were built; running\n"
        "on it still needs a GPU).");
  m.def("get_all_providers", [] { return std::vector<std::string>{kCuda, kCpu}; });
  m.def("get_device", [] {
#ifdef QUIVER_PYTHON_HAVE_CUDA
    return std::string("GPU");
#else
    return std::string("CPU");
#endif
  });
  m.def("_bench_cpp_session_run", &bench_cpp_session_run, py::arg("session"), py::arg("input_feed"),
        py::arg("iterations"));
}

}  // namespace quiver::python
