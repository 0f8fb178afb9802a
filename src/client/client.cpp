// The gRPC inference client, assembled from its parts: the server set (discovery, channels,
// readiness probes, circuit breakers, balancing), the metadata cache, the shared-memory pool, the
// request engine (attempts, retries, delivery) and the one fallback to local inference.
#include "quiver/client/client.hpp"

#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <mutex>
#include <random>

#include "client/metadata.hpp"
#include "client/request_engine.hpp"
#include "client/server_set.hpp"
#include "client/shm_pool.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/client/local_repository.hpp"

namespace quiver::client {

namespace {
ClientOptions checked(ClientOptions o) {
  if (o.fallback != FallbackMode::AlwaysLocal && o.discovery.endpoints.empty() && o.discovery.servers_file.empty() &&
      o.discovery.dns_names.empty())
    throw Error(ErrorCode::InvalidArgument, "no servers configured (endpoints, servers_file or dns_names)");
  if (o.fallback != FallbackMode::Off && !o.fallback_models && o.fallback_repository.empty())
    throw Error(ErrorCode::InvalidArgument, "fallback is enabled but no fallback_repository was given");
  if (o.retry.attempts_per_server < 1) o.retry.attempts_per_server = 1;
  if (o.retry.max_servers < 1) o.retry.max_servers = 1;
  return o;
}

uint64_t random_id() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}
}  // namespace

struct Client::Impl {
  const ClientOptions opt;
  const uint64_t client_id = random_id();
  // Local work (fallback inference, metadata prefetches) on TBB workers. Enqueued into the
  // client's own arena, not run() on the calling thread's task pool: the caller (an application
  // thread about to block on a future, a completion-queue thread) never waits on the task group,
  // and a task spawned there may be left to sit unstolen (seen: `quiver validate`'s always-local
  // client hanging in a third of runs at nice 19). An enqueued task gets a worker even when no
  // thread waits (oneTBB's mandatory concurrency).
  tbb::task_arena arena{tbb::task_arena::automatic, 0};
  tbb::task_group workers;
  std::mutex workers_mu;  // defer() from completion threads and callers' threads
  Fallback::Executor on_workers = [this](std::function<void()> task) {
    std::lock_guard lk(workers_mu);
    arena.enqueue(workers.defer(std::move(task)));
  };
  std::shared_ptr<const Fallback> fallback;  // null when off
  std::shared_ptr<ShmPool> shm;              // null when off
  ServerSet servers;
  MetadataCache meta;
  RequestEngine engine;

  explicit Impl(ClientOptions o)
      : opt(checked(std::move(o))),
        fallback(make_fallback()),
        shm(opt.shared_memory && opt.fallback != FallbackMode::AlwaysLocal
                ? std::make_shared<ShmPool>(std::max(1, opt.shm_slots), std::max<int64_t>(64, opt.shm_slot_bytes),
                                            client_id)
                : nullptr),
        servers(opt),
        meta(opt, servers, fallback, on_workers),
        engine(opt, client_id, servers, meta, shm, fallback, on_workers) {}

  int64_t prepared_bytes = 0;

  // fallback_prepare: each model loaded now, and its states sized ahead and handed to the pool the
  // fallback runs with.
  void prepare_fallback() {
    for (const std::string& entry : opt.fallback_prepare) {
      const size_t eq = entry.find('=');
      std::string model = entry.substr(0, eq), version;
      if (const size_t colon = model.find(':'); colon != std::string::npos) {
        version = model.substr(colon + 1);
        model.resize(colon);
      }
      const ErrorWhere where{.model = model, .node = "client option fallback_prepare '" + entry + "'"};
      if (!fallback)
        throw Error(ErrorCode::InvalidArgument, "fallback_prepare needs the fallback enabled", where);
      if (model.empty()) throw Error(ErrorCode::InvalidArgument, "fallback_prepare entry names no model", where);
      std::shared_ptr<const Model> m;
      try {
        m = fallback->models().get(model, version);
      } catch (const Error& e) {
        throw e.with_context(where);
      }
      const int n = opt.fallback_prepare_states > 0 ? opt.fallback_prepare_states : arena.max_concurrency();
      PrepareSpec automatic;
      automatic.batch = 1;
      PreparedStates p =
          make_prepared_states(*m, n, eq == std::string::npos ? "" : entry.substr(eq + 1), automatic, where);
      prepared_bytes += static_cast<int64_t>(p.report.bytes);
      fallback->models().add_states(*m, std::move(p.states));
    }
  }

  std::shared_ptr<const Fallback> make_fallback() const {
    if (opt.fallback == FallbackMode::Off) return nullptr;
    std::shared_ptr<LocalModels> models = opt.fallback_models;
    if (!models) models = std::make_shared<LocalRepository>(opt.fallback_repository);
    return std::make_shared<Fallback>(opt.fallback, std::move(models), on_workers);
  }

  void start() {
    if (opt.fallback != FallbackMode::AlwaysLocal) {
      ServerSet::ArrivalCheck arrival;
      if (shm)  // a server takes traffic once it has the client's region
        arrival = [this](ServerState& s) { return shm->register_with(s, opt.probe_timeout_ns); };
      servers.start(std::move(arrival));
    }
    engine.start();
  }

  void shutdown() {
    servers.stop();
    engine.drain();
    arena.execute([this] { workers.wait(); });
    if (shm) shm->unregister_from(servers.servers());
    engine.stop();
  }
};

// ---------------- Client ----------------
Client::Client(ClientOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {
  impl_->prepare_fallback();
  impl_->start();
}

Client::~Client() { impl_->shutdown(); }

void Client::infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                         InferCallback done) {
  impl_->engine.infer_async(model, std::move(inputs), options, std::move(done));
}

std::future<InferResult> Client::infer_future(const std::string& model, std::vector<NamedTensor> inputs,
                                              const InferOptions& options) {
  auto p = std::make_shared<std::promise<InferResult>>();
  auto f = p->get_future();
  infer_async(model, std::move(inputs), options, [p](InferResult r) { p->set_value(std::move(r)); });
  return f;
}

InferResult Client::infer(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options) {
  return infer_future(model, std::move(inputs), options).get();
}

int64_t Client::max_batch(const std::string& model, const std::string& version) {
  try {
    return model_metadata(model, version)->info.max_batch;
  } catch (const Error&) {
    return 0;  // not known (yet): the caller sends what it has and the server says if it is too much
  }
}

std::shared_ptr<const ModelMeta> Client::model_metadata(const std::string& model, const std::string& version) {
  return impl_->meta.get(model, version);
}

ClientReport Client::report() const {
  ClientReport r;
  const auto& c = impl_->engine.counters();
  r.requests = c.requests.load();
  r.completed = c.completed.load();
  r.failed = c.failed.load();
  r.retries = c.retries.load();
  r.fallbacks = c.fallbacks.load();
  r.fallback_prepared_bytes = impl_->prepared_bytes;
  for (auto& s : impl_->servers.servers()) {
    ServerReport sr;
    sr.address = s->address;
    sr.serving = s->serving.load();
    sr.removed = s->removed.load();
    sr.outstanding = s->outstanding.load();
    sr.requests = s->requests.load();
    sr.successes = s->successes.load();
    sr.failures = s->failures.load();
    sr.retries = s->retries.load();
    sr.breaker_trips = s->breaker_trips.load();
    sr.queue_ns = s->queue_ns.load();
    r.servers.push_back(sr);
  }
  return r;
}

void Client::refresh_now() { impl_->servers.refresh_now(); }

bool Client::wait_for_serving(int n, int64_t timeout_ns) { return impl_->servers.wait_for_serving(n, timeout_ns); }

const ClientOptions& Client::options() const { return impl_->opt; }

AsyncInferFn Client::async_fn() {
  return [this](const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& o, InferCallback done) {
    infer_async(model, std::move(inputs), o, std::move(done));
  };
}

// ---------------- BatchingClient ----------------
BatchingClient::BatchingClient(Client& client, CoalesceOptions options)
    : co_(client.async_fn(), [&client](const std::string& m) { return client.model_metadata(m)->info.max_batch; },
          options) {}

std::future<InferResult> BatchingClient::infer_future(const std::string& model, std::vector<NamedTensor> inputs,
                                                      const InferOptions& options) {
  auto p = std::make_shared<std::promise<InferResult>>();
  auto f = p->get_future();
  infer_async(model, std::move(inputs), options, [p](InferResult r) { p->set_value(std::move(r)); });
  return f;
}

InferResult BatchingClient::infer(const std::string& model, std::vector<NamedTensor> inputs,
                                  const InferOptions& options) {
  return infer_future(model, std::move(inputs), options).get();
}

}  // namespace quiver::client
