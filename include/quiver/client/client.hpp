// Quiver's inference client: reaches `quiver serve` or a Triton server (KServe v2 gRPC protocol),
// spreads requests over many servers, fails over, and falls back to in-process inference.
//
//   quiver::client::ClientOptions o;
//   o.discovery.endpoints = {"10.0.0.1:8001", "10.0.0.2:8001"};   // and/or servers_file, dns_names
//   o.fallback = quiver::client::FallbackMode::OnFailure;
//   o.fallback_repository = "/cvmfs/.../models";                  // same layout as the server's
//   quiver::client::Client client(o);
//
//   // Asynchronous (event frameworks): returns at once; `done` runs exactly once, later, on a
//   // client-owned thread, with outputs or an error. Park the event, resume it from `done`.
//   client.infer_async("mlp", {{"x", x}}, {}, [](quiver::client::InferResult r) { ... });
//   // Synchronous / futures for convenience:
//   auto r = client.infer("mlp", {{"x", x}});   r.throw_if_error();
//
// Threads: one (configurable) completion-queue thread runs every gRPC completion and every
// callback for server answers; no thread per request, no sleeping. A maintenance thread re-reads
// discovery sources, probes server readiness (circuit breakers), and polls ModelStatistics for the
// balancer's queue-time term. Local fallback runs on TBB worker threads.
//
// Delivery: every request completes exactly once: with outputs, or with a quiver::Error whose code
// says what happened (InvalidArgument: bad request; NotFound: no server/fallback has the model;
// DeadlineExceeded; ResourceExhausted: every server tried rejected it (queue full);
// Unavailable: no server reachable and no fallback; Cancelled: client destroyed). Retries reuse the
// request id. Inputs are copied into the request message at the call, so the caller's tensors may
// be reused as soon as infer_async returns; outputs are zero-copy views into the response.
#pragma once
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quiver/client/balancer.hpp"
#include "quiver/client/coalesce.hpp"
#include "quiver/client/endpoints.hpp"
#include "quiver/client/retry.hpp"
#include "quiver/client/types.hpp"
#include "quiver/core/model.hpp"

namespace quiver::client {

enum class Compression { None, Deflate, Gzip };

struct TlsOptions {
  bool enabled = false;
  std::string root_certs_file;       // PEM; empty: system roots
  std::string client_cert_file;      // PEM, for mTLS (with client_key_file)
  std::string client_key_file;
  std::string server_name_override;  // name checked against the server certificate
};

struct ClientOptions {
  DiscoveryOptions discovery;
  RetryPolicy retry;
  BreakerOptions breaker;
  BalancerOptions balancer;
  // Local inference when servers fail (FallbackMode in quiver/core/infer.hpp): from a model
  // repository (model/config.pbtxt, model/<version>/model.*), or from `fallback_models` when set
  // (e.g. the one model an event-framework component loaded).
  FallbackMode fallback = FallbackMode::Off;
  std::string fallback_repository;
  std::shared_ptr<LocalModels> fallback_models;
  // Fallback models loaded and sized ahead at construction, so that the first fallback neither
  // loads the model nor grows a fresh state: "MODEL" or "MODEL:VERSION", optionally "=SPEC" with a
  // prepare spec (quiver/core/prepare.hpp: "64", "16,n_pf=100", off; default: batch 1).
  // fallback_prepare_states states each (0: one per worker thread of the client). A bad entry, or a
  // model that cannot be loaded or sized, fails the construction naming the model.
  std::vector<std::string> fallback_prepare;
  int fallback_prepare_states = 0;
  Compression compression = Compression::None;
  TlsOptions tls;
  // A token file in the format of quiver serve --auth-token-file (one per line, '#' comments): every
  // call sends its first token as "authorization: Bearer TOKEN". Read once, at construction.
  std::string auth_token_file;
  int64_t default_timeout_ns = 0;         // when InferOptions.timeout_ns is 0; 0: no deadline
  int64_t health_interval_ns = 100'000'000;      // readiness probes
  int64_t probe_timeout_ns = 500'000'000;
  int64_t discovery_interval_ns = 1'000'000'000; // re-read servers file / re-resolve DNS
  int64_t statistics_interval_ns = 1'000'000'000;  // ModelStatistics polling; 0: off
  int completion_threads = 1;
  // System shared memory for inputs, for servers on this host (Triton's shared-memory extension):
  // the client maps one region of shm_slots x shm_slot_bytes, registers it with each server when
  // the server comes in, and sends inputs that fit one slot through it instead of inside the gRPC
  // message (BYTES inputs, and requests when all slots are busy, travel in the message). Off by
  // default: every server must be able to map the region, i.e. run on the same host.
  bool shared_memory = false;
  // With shared_memory: outputs too. The server writes each output into the request's slot (after
  // its inputs) and the result's tensors are zero-copy views of the slot, which stays reserved
  // until the last of them is gone. Output sizes come from the cached model metadata (batch
  // dimension = the first input's first dimension): until a model's metadata is cached (fetched
  // in the background on first use, or by model_metadata()), and for BYTES outputs, dynamic
  // non-batch dimensions or outputs that do not fit the slot, outputs travel in the message.
  // A server that finds the space too small fails the request (InvalidArgument naming the output).
  bool shared_memory_outputs = false;
  int64_t shm_slot_bytes = 1 << 20;
  int shm_slots = 64;
  int64_t startup_wait_ns = 2'000'000'000;  // constructor waits this long for first readiness probes
};

struct ServerReport {
  std::string address;
  bool serving = false, removed = false;
  int outstanding = 0;
  int64_t requests = 0, successes = 0, failures = 0, retries = 0, breaker_trips = 0;
  int64_t queue_ns = 0;
};

struct ClientReport {
  std::vector<ServerReport> servers;
  int64_t requests = 0;   // infer calls
  int64_t completed = 0;  // callbacks run with outputs
  int64_t failed = 0;     // callbacks run with an error
  int64_t retries = 0;    // extra attempts
  int64_t fallbacks = 0;  // answered locally
  int64_t fallback_prepared_bytes = 0;  // held by the fallback states sized ahead (fallback_prepare)
};

// Cached model metadata + config (fetched once per model/version from a server, or from the local
// repository). info.backend is "remote"; info.max_batch is the config's max_batch_size.
struct ModelMeta {
  ModelInfo info;
  std::string platform;
  std::string source;  // server address or "local:<repository>"
};

class Client final : public AsyncInferer {
 public:
  explicit Client(ClientOptions options);
  ~Client() override;  // cancels what is in flight; every pending callback has run when it returns
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                   InferCallback done) override;
  // The model's max_batch_size from its (cached) metadata; 0 when it has none or no server or
  // fallback knows the model yet.
  int64_t max_batch(const std::string& model, const std::string& version) override;
  std::future<InferResult> infer_future(const std::string& model, std::vector<NamedTensor> inputs,
                                        const InferOptions& options = {});
  // Blocks until completion; the error, if any, is in the result.
  InferResult infer(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options = {});

  // Metadata + config, fetched once and cached; throws quiver::Error when no server and no local
  // repository knows the model.
  std::shared_ptr<const ModelMeta> model_metadata(const std::string& model, const std::string& version = "");

  ClientReport report() const;
  // Runs discovery and readiness probes now (instead of waiting for the maintenance thread).
  void refresh_now();
  // Waits until at least `n` servers can take a request: each answered a readiness probe sent
  // after this call (it starts a probe round at once) and has had no transport failure since.
  // A breaker that has not yet seen a server die, or a channel still in its reconnect backoff,
  // does not count. False on timeout.
  bool wait_for_serving(int n, int64_t timeout_ns);
  const ClientOptions& options() const;
  AsyncInferFn async_fn();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Cross-event coalescing over a Client (see coalesce.hpp): many threads' small requests for the
// same model become one RPC along the batch dimension. The max batch defaults to the model's
// max_batch_size from the cached config.
class BatchingClient final : public AsyncInferer {
 public:
  explicit BatchingClient(Client& client, CoalesceOptions options = {});
  void infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                   InferCallback done) override {
    co_.infer_async(model, std::move(inputs), options, std::move(done));
  }
  std::future<InferResult> infer_future(const std::string& model, std::vector<NamedTensor> inputs,
                                        const InferOptions& options = {});
  InferResult infer(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options = {});
  CoalesceStats stats() const { return co_.stats(); }

 private:
  Coalescer co_;
};

// A remote model as a quiver::Model: code written against Model goes remote unchanged.
// info() comes from the cached metadata; run() is a synchronous infer (throws quiver::Error).
class RemoteModel : public Model {
 public:
  RemoteModel(std::shared_ptr<Client> client, std::string model, std::string version = "");
  const ModelInfo& info() const override { return meta_->info; }
  std::unique_ptr<RunState> make_state() const override;
  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const override;
  void describe(std::ostream& os) const override;
  Client& client() const { return *client_; }

 private:
  std::shared_ptr<Client> client_;
  std::string model_, version_;
  std::shared_ptr<const ModelMeta> meta_;
};

// A service URL "grpc://HOST:PORT[,HOST:PORT...][/MODEL[/VERSION]]": the servers, the model and
// the version (any may be empty: servers can come from a servers file). Throws InvalidArgument
// quoting the URL when it does not start with grpc://.
// "grpc://HOST:PORT[,HOST:PORT...][/MODEL[/VERSION]][?KEY=VALUE[&KEY=VALUE...]]"; the query keys
// are client settings (e.g. auth_token_file) that each consumer checks.
struct ServiceUrl {
  std::vector<std::string> endpoints;
  std::string model, version;
  std::map<std::string, std::string> params;
};
ServiceUrl parse_service_url(const std::string& url);

// A RemoteModel with its own Client, from a URL "grpc://HOST:PORT[,HOST:PORT...]/MODEL[/VERSION]".
// params (or the URL's query): "fallback" (off|on-failure|always-local), "fallback_repository",
// "servers_file", "timeout_ms", "auth_token_file". `version_override` (non-empty) replaces the URL's version.
std::shared_ptr<const Model> make_remote_model(const std::string& url,
                                               const std::map<std::string, std::string>& params = {},
                                               const std::string& name = "", const std::string& version_override = "");

// Registers backend "remote" with quiver::load_model, for remote-model files: "*.remote.json" (or
// any JSON file containing "quiver-remote") such as
//   {"format": "quiver-remote", "url": "grpc://a:8001,b:8001/mlp", "fallback": "on-failure",
//    "fallback_repository": "/models", "timeout_ms": 100}
// LoadOptions.params override the file's keys. Code that loads models by path goes remote unchanged.
void register_remote_backend();

}  // namespace quiver::client
