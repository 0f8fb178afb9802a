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
#include <mutex>
#include <queue>
#include <thread>

#include "quiver/backends/backends.hpp"
#include "quiver/flow/application.hpp"

namespace fs = std::filesystem;

namespace quiver::flow {

// ---------------------------------------------------------------- inferer registry
namespace {
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, InfererMaker>& registry() {
  static std::map<std::string, InfererMaker> r;
  return r;
}

Provenance model_provenance(const Model& m, const std::string& mode) {
  const ModelInfo& i = m.info();
  return Provenance{i.name, i.version, i.sha256, mode};
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
  void infer_async(std::vector<NamedTensor> inputs, Callback done) override {
    auto when = std::chrono::steady_clock::now() + latency_;
    {
      std::lock_guard<std::mutex> lk(m_);
      due_.push(Due{when, seq_++, std::make_shared<Job>(Job{std::move(inputs), std::move(done)})});
    }
    cv_.notify_one();
  }
  Provenance provenance() const override { return model_provenance(*model_, "service"); }

 private:
  struct Job {
    std::vector<NamedTensor> inputs;
    Callback done;
  };
  struct Due {
    std::chrono::steady_clock::time_point when;
    uint64_t seq;
    std::shared_ptr<Job> job;
    bool operator>(const Due& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  void answer(Job& job) {
    std::vector<NamedTensor> out;
    std::exception_ptr err;
    try {
      std::vector<Tensor> ins;
      for (auto& t : job.inputs) ins.push_back(t.tensor);
      std::vector<Tensor> outs;
      model_->run(ins, outs, *state_);
      for (size_t k = 0; k < outs.size(); ++k) out.push_back({model_->info().outputs[k].name, std::move(outs[k])});
    } catch (...) {
      err = std::current_exception();
    }
    job.done(std::move(out), err);
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
}  // namespace

void register_inferer_scheme(const std::string& scheme, InfererMaker maker) {
  std::lock_guard<std::mutex> lk(registry_mutex());
  registry()[scheme] = std::move(maker);
}

std::shared_ptr<AsyncInferer> make_loopback_inferer(std::shared_ptr<const Model> model, double latency_ms) {
  if (!model) throw Error(ErrorCode::InvalidArgument, "loopback service needs a model");
  return std::make_shared<LoopbackInferer>(std::move(model), latency_ms);
}

std::shared_ptr<AsyncInferer> make_inferer(const std::string& spec, std::shared_ptr<const Model> model,
                                           const std::string& model_name) {
  std::string scheme = spec.substr(0, spec.find_first_of(":"));
  if (scheme == "loopback") {
    double latency = 0;
    auto colon = spec.find(':');
    if (colon != std::string::npos) latency = parse_parameter<double>("service", spec.substr(colon + 1));
    return make_loopback_inferer(std::move(model), latency);
  }
  InfererMaker maker;
  {
    std::lock_guard<std::mutex> lk(registry_mutex());
    auto it = registry().find(scheme);
    if (it != registry().end()) maker = it->second;
  }
  if (!maker)
    throw Error(ErrorCode::NotFound, "no service client for '" + spec +
                                         "' (known: loopback[:LATENCY_MS]" +
                                         [] {
                                           std::string s;
                                           std::lock_guard<std::mutex> lk(registry_mutex());
                                           for (auto& [k, v] : registry()) s += ", " + k + "://";
                                           return s;
                                         }() + ")");
  return maker(spec, std::move(model), model_name);
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
    register_builtin_backends();
    LoadOptions lo;
    lo.params["device"] = *device_;
    lo.params["device_streams"] = std::to_string(*device_streams_);
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
  inferer_.reset();
  if (I.mode == Mode::Service) inferer_ = inferer_override_ ? inferer_override_ : make_inferer(*service_, model_, info.name);
  int64_t max_batch = *max_batch_;
  if (info.max_batch > 0 && info.max_batch < max_batch) {
    log(LogLevel::Info, "max_batch " + std::to_string(max_batch) + " capped to the model's " + std::to_string(info.max_batch));
    max_batch = info.max_batch;
  }
  engine_.set_spread(*spread_);
  if (I.mode == Mode::Batched)
    engine_.start(runtime(), pool_size(), max_batch, *max_wait_ms_,
                  [this](std::span<const BatchTicket> b) { run_batch(b); }, name());
  on_init();
}

void InferenceFactory::finish() {
  engine_.stop();
  inferer_.reset();
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
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < nin; ++k) {
      std::vector<int64_t> d{1};
      d.insert(d.end(), I.in_item_dims[k].begin(), I.in_item_dims[k].end());
      auto& t = s.in.tensors_[k];
      views[k] = Tensor::view(t.dtype(), d, static_cast<const char*>(t.raw()) + i * s.in.item_numel_[k] * dtype_size(t.dtype()));
    }
    model_->run(views, outs, *st);
    for (size_t k = 0; k < outs.size(); ++k) {
      Tensor& o = s.out.tensors_[k];
      if (i == 0) {
        std::vector<int64_t> d = outs[k].dims();
        if (d.empty()) d.push_back(1);
        d[0] = static_cast<int64_t>(n);
        o.ensure(outs[k].dtype(), d);
      }
      size_t bytes = outs[k].nbytes();
      if (bytes * n != o.nbytes())
        throw Error(ErrorCode::Internal, "output size changed between items", ErrorWhere{.tensor = I.out_names[k]});
      std::memcpy(static_cast<char*>(o.raw()) + i * bytes, outs[k].raw(), bytes);
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
    size_t item_bytes = static_cast<size_t>(quiver::numel(I.in_item_dims[k])) * dtype_size(I.in_dtypes[k]);
    for (size_t j = 0; j < B; ++j) {
      auto& src = I.ev[*b[j].event].in.tensors_[k];
      std::memcpy(static_cast<char*>(ins[k].raw()) + j * item_bytes,
                  static_cast<const char*>(src.raw()) + b[j].index * item_bytes, item_bytes);
    }
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
  for (size_t k = 0; k < outs.size(); ++k) {
    const size_t item_bytes = outs[k].nbytes() / B;
    for (size_t j = 0; j < B; ++j) {
      Tensor& o = I.ev[*b[j].event].out.tensors_[k];
      std::memcpy(static_cast<char*>(o.raw()) + b[j].index * item_bytes,
                  static_cast<const char*>(outs[k].raw()) + j * item_bytes, item_bytes);
    }
  }
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
    case Mode::Service: {
      s.out.prov_ = inferer_->provenance();
      if (s.in.size() == 0) {
        s.out.tensors_.assign(I.out_names.size(), Tensor());
        done();
        return;
      }
      // Requests of at most the server's max batch: an event with more items sends several and
      // resumes when all have answered (outputs concatenated in item order).
      const size_t n = s.in.size();
      int64_t mb = inferer_->max_batch();
      size_t per = mb > 0 ? static_cast<size_t>(mb) : n;
      size_t chunks = (n + per - 1) / per;
      struct Gather {
        std::mutex m;
        size_t left;
        std::vector<std::vector<NamedTensor>> parts;
        std::exception_ptr err;
      };
      auto g = std::make_shared<Gather>();
      g->left = chunks;
      g->parts.resize(chunks);
      PerEvent* sp = &s;
      for (size_t c = 0; c < chunks; ++c) {
        size_t first = c * per, count = std::min(per, n - first);
        std::vector<NamedTensor> req;
        for (size_t k = 0; k < s.in.tensors_.size(); ++k) {
          const Tensor& t = s.in.tensors_[k];
          std::vector<int64_t> d = t.dims();
          d[0] = static_cast<int64_t>(count);
          size_t item_bytes = static_cast<size_t>(s.in.item_numel_[k]) * dtype_size(t.dtype());
          req.push_back({I.in_names[k], Tensor::view(t.dtype(), d, static_cast<const char*>(t.raw()) + first * item_bytes)});
        }
        inferer_->infer_async(std::move(req), [this, sp, done, g, c](std::vector<NamedTensor> outs, std::exception_ptr err) {
          {
            std::lock_guard<std::mutex> lk(g->m);
            if (err && !g->err) g->err = err;
            if (!err) g->parts[c] = std::move(outs);
            if (--g->left != 0) return;
          }
          service_answered(sp, done, g->parts, g->err);
        });
      }
      return;
    }
  }
}

void InferenceFactory::service_answered(PerEvent* sp, const Completion& done,
                                        std::vector<std::vector<NamedTensor>>& parts, std::exception_ptr err) {
  if (!err) {
    try {
      sp->out.tensors_.clear();
      sp->out.names_.clear();
      if (parts.size() == 1) {
        for (auto& o : parts[0]) {
          sp->out.names_.push_back(o.name);
          sp->out.tensors_.push_back(std::move(o.tensor));
        }
      } else {
        for (size_t k = 0; k < parts[0].size(); ++k) {
          int64_t rows = 0;
          for (auto& p : parts) {
            if (p.size() != parts[0].size() || p[k].tensor.rank() == 0)
              throw Error(ErrorCode::Internal, "service answers of one event do not match", {.tensor = parts[0][k].name});
            rows += p[k].tensor.dim(0);
          }
          std::vector<int64_t> d = parts[0][k].tensor.dims();
          d[0] = rows;
          Tensor all = Tensor::empty(parts[0][k].tensor.dtype(), d);
          size_t off = 0;
          for (auto& p : parts) {
            std::memcpy(static_cast<char*>(all.raw()) + off, p[k].tensor.raw(), p[k].tensor.nbytes());
            off += p[k].tensor.nbytes();
          }
          sp->out.names_.push_back(parts[0][k].name);
          sp->out.tensors_.push_back(std::move(all));
        }
      }
    } catch (...) {
      done.fail(std::current_exception());
      return;
    }
    done();
    return;
  }
  if (!impl_->fallback_direct) {
    done.fail(err);
    return;
  }
  // Fall back to direct inference, on a framework thread (never on the client's thread).
  fallbacks_.fetch_add(1);
  try {
    Error e = [&] {
      try {
        std::rethrow_exception(err);
      } catch (const Error& x) {
        return x;
      } catch (const std::exception& x) {
        return Error(ErrorCode::Internal, x.what());
      } catch (...) {
        return Error(ErrorCode::Internal, "unknown");
      }
    }();
    log(LogLevel::Warn, std::string("service failed, falling back to direct inference: ") + e.what());
    runtime().enqueue([this, sp, done] {
      try {
        sp->out.prov_ = model_provenance(*model_, impl_->local_mode("service-fallback-direct"));
        run_direct(*sp);
        done();
      } catch (...) {
        done.fail(std::current_exception());
      }
    });
  } catch (...) {
    done.fail(std::current_exception());
  }
}

void InferenceFactory::produce(Event& e) {
  PerEvent& s = impl_->ev[e];
  read_outputs(e, s.out);
}

}  // namespace quiver::flow
