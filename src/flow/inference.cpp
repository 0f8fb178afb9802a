// InferenceFactory: one physics implementation, three execution modes.
#include "quiver/flow/inference.hpp"

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <mutex>
#include <queue>
#include <thread>

#include "quiver/backends/backends.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/flow/application.hpp"

namespace fs = std::filesystem;

namespace quiver::flow {

// ---------------------------------------------------------------- inferer registry
namespace {
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
ServiceTarget make_loopback_target(const std::string& spec, std::shared_ptr<const Model> model,
                                   const std::string& model_name, FallbackMode fallback,
                                   const Fallback::Executor& executor);
#ifdef QUIVER_FLOW_HAVE_CLIENT
}  // namespace
ServiceTarget make_client_target(const std::string& spec, std::shared_ptr<const Model> model,
                                 const std::string& model_name, FallbackMode fallback);  // client_inferer.cpp
namespace {
#endif

// Service schemes: the built-in ones are listed here, where the registry is defined;
// register_inferer_scheme() adds others.
std::map<std::string, InfererMaker>& registry() {
  static std::map<std::string, InfererMaker> r = {
      {"loopback", make_loopback_target},
#ifdef QUIVER_FLOW_HAVE_CLIENT
      {"grpc",
       [](const std::string& spec, std::shared_ptr<const Model> model, const std::string& name, FallbackMode fallback,
          const Fallback::Executor&) { return make_client_target(spec, std::move(model), name, fallback); }},
#endif
  };
  return r;
}

Provenance model_provenance(const Model& m, const std::string& mode) {
  const ModelInfo& i = m.info();
  Provenance p;
  p.model = i.name;
  p.version = i.version;
  p.sha256 = i.sha256;
  p.mode = mode;
  return p;
}

// A pool of RunStates: any thread takes one for a call and gives it back.
class StatePool {
 public:
  explicit StatePool(const Model* m) : model_(m) {}
  std::unique_ptr<RunState> take() {
    std::unique_ptr<RunState> s;
    if (q_.try_pop(s)) return s;
    return model_->make_state();
  }
  void give(std::unique_ptr<RunState> s) { q_.push(std::move(s)); }

 private:
  const Model* model_;
  tbb::concurrent_queue<std::unique_ptr<RunState>> q_;
};

// The in-process stand-in for a server: one service thread (like a server's completion thread)
// answers each request `latency` after it arrived, computing with the local model. It only ever
// sleeps on its own condition variable; callers never wait.
class LoopbackInferer final : public AsyncInferer {
 public:
  LoopbackInferer(std::shared_ptr<const Model> model, double latency_ms)
      : model_(std::move(model)), state_(model_->make_state()),
        latency_(std::chrono::nanoseconds(static_cast<int64_t>(latency_ms * 1e6))) {
    thread_ = std::thread([this] { loop(); });
  }
  ~LoopbackInferer() override {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();  // answers everything still queued first
  }
  void infer_async(const std::string&, std::vector<NamedTensor> inputs, const InferOptions& options,
                   InferCallback done) override {
    auto when = std::chrono::steady_clock::now() + latency_;
    {
      std::lock_guard<std::mutex> lk(m_);
      due_.push(Due{when, seq_++, std::make_shared<Job>(Job{std::move(inputs), options.request_id, std::move(done)})});
    }
    cv_.notify_one();
  }
  int64_t max_batch(const std::string&, const std::string&) override { return model_->info().max_batch; }

 private:
  struct Job {
    std::vector<NamedTensor> inputs;
    std::string request_id;
    InferCallback done;
  };
  struct Due {
    std::chrono::steady_clock::time_point when;
    uint64_t seq;
    std::shared_ptr<Job> job;
    bool operator>(const Due& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  void answer(Job& job) {
    InferResult r;
    r.request_id = job.request_id;
    r.provenance = model_provenance(*model_, "service");
    try {
      std::vector<Tensor> ins;
      for (auto& t : job.inputs) ins.push_back(t.tensor);
      std::vector<Tensor> outs;
      model_->run(ins, outs, *state_);
      for (size_t k = 0; k < outs.size(); ++k) r.outputs.push_back({model_->info().outputs[k].name, std::move(outs[k])});
    } catch (const Error& e) {
      r.outputs.clear();
      r.error = e;
    } catch (const std::exception& e) {
      r.outputs.clear();
      r.error = Error(ErrorCode::Internal, e.what(), {.model = model_->info().name});
    }
    job.done(std::move(r));
  }
  void loop() {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      if (due_.empty()) {
        if (stop_) return;
        cv_.wait(lk);
        continue;
      }
      auto when = due_.top().when;
      if (!stop_ && std::chrono::steady_clock::now() < when) {
        cv_.wait_until(lk, when);
        continue;
      }
      auto job = due_.top().job;
      due_.pop();
      lk.unlock();
      answer(*job);
      lk.lock();
    }
  }
  std::shared_ptr<const Model> model_;
  std::unique_ptr<RunState> state_;  // used by the service thread only
  std::chrono::nanoseconds latency_;
  std::mutex m_;
  std::condition_variable cv_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

ServiceTarget make_loopback_target(const std::string& spec, std::shared_ptr<const Model> model,
                                   const std::string& model_name, FallbackMode fallback,
                                   const Fallback::Executor& executor) {
  double latency = 0;
  auto colon = spec.find(':');
  if (colon != std::string::npos) latency = parse_parameter<double>("service", spec.substr(colon + 1));
  ServiceTarget t{make_loopback_inferer(model, latency), model_name, ""};
  if (fallback != FallbackMode::Off)
    t.inferer = wrap_with_fallback(t.inferer, std::make_shared<Fallback>(fallback, single_local_model(model, model_name), executor));
  return t;
}
}  // namespace

void register_inferer_scheme(const std::string& scheme, InfererMaker maker) {
  std::lock_guard<std::mutex> lk(registry_mutex());
  registry()[scheme] = std::move(maker);
}

std::shared_ptr<AsyncInferer> make_loopback_inferer(std::shared_ptr<const Model> model, double latency_ms) {
  if (!model) throw Error(ErrorCode::InvalidArgument, "loopback service needs a model");
  return std::make_shared<LoopbackInferer>(std::move(model), latency_ms);
}

ServiceTarget make_inferer(const std::string& spec, std::shared_ptr<const Model> model, const std::string& model_name,
                           FallbackMode fallback, const Fallback::Executor& executor) {
  std::string scheme = spec.substr(0, spec.find_first_of(":"));
  InfererMaker maker;
  {
    std::lock_guard<std::mutex> lk(registry_mutex());
    auto it = registry().find(scheme);
    if (it != registry().end()) maker = it->second;
  }
  if (!maker)
    throw Error(ErrorCode::NotFound, "no service client for '" + spec +
                                         "' (known: " +
                                         [] {
                                           std::string s;
                                           std::lock_guard<std::mutex> lk(registry_mutex());
                                           for (auto& [k, v] : registry())
                                             s += (s.empty() ? "" : ", ") + k + (k == "loopback" ? "[:LATENCY_MS]" : "://");
                                           return s;
                                         }() + ")");
  return maker(spec, std::move(model), model_name, fallback, executor);
}

// ---------------------------------------------------------------- inputs / outputs
size_t InferenceInputs::input_index(const std::string& name) const {
  for (size_t k = 0; k < names_.size(); ++k)
    if (names_[k] == name) return k;
  throw Error(ErrorCode::NotFound, "model has no input '" + name + "'", ErrorWhere{.tensor = name});
}

void InferenceInputs::resize(size_t n) {
  n_ = n;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    std::vector<int64_t> dims{static_cast<int64_t>(n)};
    dims.insert(dims.end(), item_dims_[k].begin(), item_dims_[k].end());
    tensors_[k].ensure(dtypes_[k], dims);
    if (tensors_[k].nbytes()) std::memset(tensors_[k].raw(), 0, tensors_[k].nbytes());
  }
}

size_t InferenceOutputs::output_index(const std::string& name) const {
  for (size_t k = 0; k < names_.size(); ++k)
    if (names_[k] == name) return k;
  throw Error(ErrorCode::NotFound, "model has no output '" + name + "'", ErrorWhere{.tensor = name});
}

// ---------------------------------------------------------------- InferenceFactory
enum class Mode { Direct, Batched, Service };

struct InferenceFactory::PerEvent {
  InferenceInputs in;
  InferenceOutputs out;
  Completion done;
};

struct InferenceFactory::Impl {
  Mode mode = Mode::Direct;
  bool per_item = true;
  bool fallback_direct = true;
  int64_t service_max_batch = 0;  // the service's limit per request (0: none)
  std::map<std::string, int64_t> dims;
  std::unique_ptr<StatePool> states;
  EventLocal<PerEvent> ev;
  // item layout of the model inputs / outputs (without the batch dim)
  std::vector<std::string> in_names, out_names;
  std::vector<DType> in_dtypes;
  std::vector<std::vector<int64_t>> in_item_dims;
  // Batched mode: the items of one event can be in two batches running at once (a split idle flush,
  // a full batch beside a timer flush); the first one to finish shapes the event's outputs.
  std::mutex out_alloc;
  // Provenance mode of local inference: "batched", or "batched/cuda:0" off the CPU.
  std::string device;
  std::string local_mode(const char* mode) const { return device == "cpu" ? mode : std::string(mode) + "/" + device; }
};

InferenceFactory::InferenceFactory() : impl_(std::make_unique<Impl>()) {}
InferenceFactory::~InferenceFactory() = default;

void InferenceFactory::set_dim(const std::string& symbol, int64_t value) { impl_->dims[symbol] = value; }

void InferenceFactory::init() {
  Impl& I = *impl_;
  const std::string& m = *mode_;
  if (m == "direct") I.mode = Mode::Direct;
  else if (m == "batched") I.mode = Mode::Batched;
  else if (m == "service") I.mode = Mode::Service;
  else
    throw Error(ErrorCode::InvalidArgument, "parameter '" + name() + ".mode': expected direct, batched or service, got '" + m + "'",
                ErrorWhere{.node = name()});
  if (*granularity_ != "item" && *granularity_ != "event")
    throw Error(ErrorCode::InvalidArgument, "parameter '" + name() + ".direct_granularity': expected item or event",
                ErrorWhere{.node = name()});
  I.per_item = *granularity_ == "item";
  if (*fallback_ != "direct" && *fallback_ != "fail")
    throw Error(ErrorCode::InvalidArgument, "parameter '" + name() + ".fallback': expected direct or fail",
                ErrorWhere{.node = name()});
  I.fallback_direct = *fallback_ == "direct";

  // Model: needed for direct and batched; for service it gives the input layout and the fallback.
  model_ = model_override_;
  if (!model_ && !model_path_->empty()) {
    std::string path = *model_path_;
    if (fs::path(path).is_relative() && !app().config_dir().empty() && !fs::exists(path) &&
        fs::exists(fs::path(app().config_dir()) / path))
      path = (fs::path(app().config_dir()) / path).string();
    LoadOptions lo;
    lo.params["device"] = *device_;
    lo.params["device_streams"] = std::to_string(*device_streams_);
    if (*numerics_ != "default") lo.params["numerics"] = *numerics_;
    model_ = load_model(path, lo);
  }
  if (!model_)
    throw Error(ErrorCode::InvalidArgument, "missing required parameter '" + name() + ".model' (model file)",
                ErrorWhere{.node = name()});
  const ModelInfo& info = model_->info();
  I.device = info.device.empty() ? "cpu" : info.device;
  I.in_names.clear();
  I.in_dtypes.clear();
  I.in_item_dims.clear();
  for (auto& t : info.inputs) {
    if (t.shape.empty())
      throw Error(ErrorCode::Unsupported, "input has no batch dimension", ErrorWhere{.model = info.name, .node = name(), .tensor = t.name});
    std::vector<int64_t> d;
    for (size_t i = 1; i < t.shape.size(); ++i) {
      const Dim& dim = t.shape[i];
      if (dim.is_fixed()) {
        d.push_back(dim.value);
        continue;
      }
      auto it = I.dims.find(dim.symbol);
      if (it == I.dims.end())
        throw Error(ErrorCode::InvalidArgument,
                    "symbolic dim '" + dim.symbol + "' of input needs a value (set_dim)",
                    ErrorWhere{.model = info.name, .node = name(), .tensor = t.name});
      d.push_back(it->second);
    }
    I.in_names.push_back(t.name);
    I.in_dtypes.push_back(t.dtype);
    I.in_item_dims.push_back(d);
  }
  I.out_names.clear();
  for (auto& t : info.outputs) I.out_names.push_back(t.name);
  I.states = std::make_unique<StatePool>(model_.get());
  I.ev.resize(pool_size());
  for (size_t s = 0; s < pool_size(); ++s) {
    auto& pe = I.ev.at_slot(s);
    pe.in = InferenceInputs();
    pe.in.names_ = I.in_names;
    pe.in.dtypes_ = I.in_dtypes;
    pe.in.item_dims_ = I.in_item_dims;
    pe.in.item_numel_.clear();
    for (auto& d : I.in_item_dims) pe.in.item_numel_.push_back(quiver::numel(d));
    pe.in.tensors_.assign(I.in_names.size(), Tensor());
  }
  target_ = {};
  if (I.mode == Mode::Service) {
    // Failed requests are answered by the local model through the one fallback (on framework
    // threads when it wraps an in-process service; the gRPC client runs it itself).
    const FallbackMode fb = I.fallback_direct ? FallbackMode::OnAnyFailure : FallbackMode::Off;
    Fallback::Executor on_workers = [this](std::function<void()> task) { runtime().enqueue(std::move(task)); };
    if (inferer_override_) {
      target_ = {inferer_override_, info.name, ""};
      if (fb != FallbackMode::Off)
        target_.inferer = wrap_with_fallback(
            inferer_override_, std::make_shared<Fallback>(fb, single_local_model(model_, info.name), on_workers));
    } else {
      target_ = make_inferer(*service_, model_, info.name, fb, on_workers);
    }
    I.service_max_batch = std::max<int64_t>(0, target_.inferer->max_batch(target_.model, target_.version));
  }
  int64_t max_batch = *max_batch_;
  if (info.max_batch > 0 && info.max_batch < max_batch) {
    log(LogLevel::Info, "max_batch " + std::to_string(max_batch) + " capped to the model's " + std::to_string(info.max_batch));
    max_batch = info.max_batch;
  }
  if (I.mode != Mode::Service) {
    // One state per worker thread, sized ahead so that no event pays a fresh state's first call.
    PrepareSpec automatic;
    automatic.batch = I.mode == Mode::Batched ? max_batch : 1;
    automatic.dims = I.dims;
    PreparedStates p = make_prepared_states(*model_, runtime().concurrency(), *prepare_, automatic,
                                            ErrorWhere{.model = info.name, .node = name() + ".prepare"});
    log(LogLevel::Info, p.report.summary());
    for (auto& st : p.states) I.states->give(std::move(st));
  }
  engine_.set_spread(*spread_);
  if (I.mode == Mode::Batched)
    engine_.start(runtime(), pool_size(), max_batch, *max_wait_ms_,
                  [this](std::span<const BatchTicket> b) { run_batch(b); }, name());
  on_init();
}

void InferenceFactory::finish() {
  engine_.stop();
  target_ = {};
}

void InferenceFactory::run_direct(PerEvent& s) {
  Impl& I = *impl_;
  const size_t n = s.in.size();
  const size_t nin = s.in.tensors_.size();
  auto st = I.states->take();
  struct Give {
    StatePool& p;
    std::unique_ptr<RunState>& s;
    ~Give() { p.give(std::move(s)); }
  } give{*I.states, st};
  s.out.n_ = n;
  s.out.names_ = I.out_names;
  s.out.tensors_.resize(I.out_names.size());
  if (n == 0) return;
  if (!I.per_item) {
    std::vector<Tensor> outs;
    model_->run(s.in.tensors_, outs, *st);
    for (size_t k = 0; k < outs.size(); ++k) s.out.tensors_[k] = std::move(outs[k]);
    return;
  }
  std::vector<Tensor> views(nin), outs;
  static constexpr int64_t kOne[] = {1};
  for (size_t i = 0; i < n; ++i) {
    const int64_t row = static_cast<int64_t>(i);
    for (size_t k = 0; k < nin; ++k) views[k] = s.in.tensors_[k].rows(row, 1);
    model_->run(views, outs, *st);
    for (size_t k = 0; k < outs.size(); ++k) {
      Tensor& o = s.out.tensors_[k];
      const Tensor item = outs[k].rank() == 0 ? outs[k].reshaped(kOne) : outs[k];
      if (i == 0) {
        std::vector<int64_t> d = item.dims();
        d[0] = static_cast<int64_t>(n);
        o.ensure(item.dtype(), d);
      }
      copy_rows(item, 0, o, row, 1, I.out_names[k]);  // throws when an item's output differs in size
    }
  }
}

void InferenceFactory::run_batch(std::span<const BatchTicket> b) {
  Impl& I = *impl_;
  const size_t B = b.size();
  const size_t nin = I.in_names.size();
  std::vector<Tensor> ins(nin), outs;
  for (size_t k = 0; k < nin; ++k) {
    std::vector<int64_t> d{static_cast<int64_t>(B)};
    d.insert(d.end(), I.in_item_dims[k].begin(), I.in_item_dims[k].end());
    ins[k] = Tensor::empty(I.in_dtypes[k], d);
    for (size_t j = 0; j < B; ++j)
      copy_rows(I.ev[*b[j].event].in.tensors_[k], static_cast<int64_t>(b[j].index), ins[k], static_cast<int64_t>(j), 1,
                I.in_names[k]);
  }
  auto st = I.states->take();
  model_->run(ins, outs, *st);
  I.states->give(std::move(st));
  {
    std::lock_guard<std::mutex> lk(I.out_alloc);
    for (size_t k = 0; k < outs.size(); ++k) {
      const size_t item_bytes = outs[k].nbytes() / B;
      for (size_t j = 0; j < B; ++j) {
        auto& pe = I.ev[*b[j].event];
        Tensor& o = pe.out.tensors_[k];
        const size_t n = pe.in.size();
        if (!o.defined() || o.nbytes() != item_bytes * n || o.dtype() != outs[k].dtype()) {
          // first batch touching this event's output k (sizes are fixed per event)
          std::vector<int64_t> d = outs[k].dims();
          d[0] = static_cast<int64_t>(n);
          o.ensure(outs[k].dtype(), d);
        }
      }
    }
  }
  // Storage is fixed now; each item's row is written by exactly one batch.
  for (size_t k = 0; k < outs.size(); ++k)
    for (size_t j = 0; j < B; ++j)
      copy_rows(outs[k], static_cast<int64_t>(j), I.ev[*b[j].event].out.tensors_[k], static_cast<int64_t>(b[j].index), 1,
                I.out_names[k]);
}

void InferenceFactory::acquire(Event& e, Completion done) {
  Impl& I = *impl_;
  PerEvent& s = I.ev[e];
  s.in.n_ = 0;
  fill_inputs(e, s.in);
  s.out.names_ = I.out_names;
  s.out.n_ = s.in.size();
  switch (I.mode) {
    case Mode::Direct:
      s.out.prov_ = model_provenance(*model_, I.local_mode("direct"));
      run_direct(s);
      done();
      return;
    case Mode::Batched: {
      s.out.prov_ = model_provenance(*model_, I.local_mode("batched"));
      s.out.tensors_.resize(I.out_names.size());
      for (auto& t : s.out.tensors_) t = Tensor();  // re-shaped by the first batch of this event
      engine_.submit(e, s.in.size(), std::move(done));
      return;
    }
    case Mode::Service:
      request_service(s, std::move(done));
      return;
  }
}

// The answers to one event's requests, gathered until the last arrives.
struct InferenceFactory::Gather {
  std::mutex m;
  size_t left = 0;
  std::vector<std::vector<NamedTensor>> parts;
  std::optional<Error> error;
  Provenance prov;  // of the first answer
  bool fallback = false;
};

void InferenceFactory::request_service(PerEvent& s, Completion done) {
  Impl& I = *impl_;
  const size_t n = s.in.size();
  if (n == 0) {
    s.out.prov_ = model_provenance(*model_, "service");
    s.out.tensors_.assign(I.out_names.size(), Tensor());
    done();
    return;
  }
  // Requests of at most the service's max batch: an event with more items sends several and
  // resumes when all have answered (outputs joined in item order).
  const size_t per = I.service_max_batch > 0 ? static_cast<size_t>(I.service_max_batch) : n;
  const size_t chunks = (n + per - 1) / per;
  auto g = std::make_shared<Gather>();
  g->left = chunks;
  g->parts.resize(chunks);
  PerEvent* sp = &s;
  InferOptions opt;
  opt.model_version = target_.version;
  for (size_t c = 0; c < chunks; ++c) {
    const size_t first = c * per, count = std::min(per, n - first);
    std::vector<NamedTensor> req;
    req.reserve(s.in.tensors_.size());
    for (size_t k = 0; k < s.in.tensors_.size(); ++k)
      req.push_back({I.in_names[k], s.in.tensors_[k].rows(static_cast<int64_t>(first), static_cast<int64_t>(count))});
    target_.inferer->infer_async(target_.model, std::move(req), opt, [this, sp, done, g, c](InferResult r) {
      {
        std::lock_guard<std::mutex> lk(g->m);
        if (!r.ok()) {
          if (!g->error) g->error = std::move(r.error);
        } else {
          if (g->left == g->parts.size()) g->prov = r.provenance;
          g->fallback |= r.provenance.fallback;
          g->parts[c] = std::move(r.outputs);
        }
        if (--g->left != 0) return;
      }
      service_answered(sp, done, *g);
    });
  }
}

void InferenceFactory::service_answered(PerEvent* sp, const Completion& done, Gather& g) {
  if (g.error) {
    done.fail(std::make_exception_ptr(*g.error));
    return;
  }
  try {
    auto& parts = g.parts;
    sp->out.tensors_.clear();
    sp->out.names_.clear();
    if (parts.size() == 1) {
      for (auto& o : parts[0]) {
        sp->out.names_.push_back(o.name);
        sp->out.tensors_.push_back(std::move(o.tensor));
      }
    } else {
      std::vector<const Tensor*> column(parts.size());
      for (size_t k = 0; k < parts[0].size(); ++k) {
        for (size_t i = 0; i < parts.size(); ++i) {
          if (parts[i].size() != parts[0].size() || parts[i][k].name != parts[0][k].name)
            throw Error(ErrorCode::Internal, "service answers of one event do not match", {.tensor = parts[0][k].name});
          column[i] = &parts[i][k].tensor;
        }
        Tensor all;
        join_rows(column, all, parts[0][k].name);
        sp->out.names_.push_back(parts[0][k].name);
        sp->out.tensors_.push_back(std::move(all));
      }
    }
    sp->out.prov_ = std::move(g.prov);
    if (g.fallback) {
      // Some request of this event was answered by the local model after the service failed.
      fallbacks_.fetch_add(1);
      log(LogLevel::Warn, "service failed, the local model answered (fallback direct)");
      sp->out.prov_.mode = impl_->local_mode("service-fallback-direct");
    } else {
      sp->out.prov_.mode = "service";
    }
  } catch (...) {
    done.fail(std::current_exception());
    return;
  }
  done();
}

void InferenceFactory::produce(Event& e) {
  PerEvent& s = impl_->ev[e];
  read_outputs(e, s.out);
}

}  // namespace quiver::flow
