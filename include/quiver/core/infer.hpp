// The inference-call layer: one asynchronous interface (request options, results, provenance,
// completion callback) shared by the gRPC client, its batching client, the flow's service mode and
// in-process stand-ins for a server, and the one fallback to local inference they all use.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "quiver/core/error.hpp"
#include "quiver/core/model.hpp"
#include "quiver/core/tensor.hpp"

namespace quiver {

struct InferOptions {
  std::string model_version;          // pin a version; empty: the server's version policy
  int64_t timeout_ns = 0;             // per-request deadline (all attempts); 0: the caller's default
  uint32_t priority = 0;              // request priority (Triton "priority" parameter); 0: default
  std::string request_id;             // empty: the client makes a unique one
  std::vector<std::string> outputs;   // outputs to return; empty: all
};

// Where a result came from: carried by client results and by the flow's inference outputs.
struct Provenance {
  std::string server;      // "host:port" of the answering server, "local:<source>" for a fallback
                           // answer; empty when computed in-process by the caller's own engine
  std::string model;       // model name as answered
  std::string version;     // model version as answered (may be empty)
  std::string sha256;      // of the model file: from the response, the cached model config, or the
                           // local model
  std::string mode;        // how it was computed: direct | batched | service | service-fallback-direct
                           // (a device suffix "/cuda:0" when not on the CPU)
  bool fallback = false;   // answered in-process by the local engine after the service failed
  int attempts = 0;        // RPC attempts made (0 when answered locally without trying a server)
};

struct InferResult {
  std::string request_id;
  std::vector<NamedTensor> outputs;   // zero-copy views into the response message where possible
  std::optional<Error> error;         // set when the request failed
  Provenance provenance;
  int64_t client_ns = 0;              // time from call to completion as the caller saw it
  bool outputs_in_shared_memory = false;  // outputs are views of the client's shared-memory slot

  bool ok() const { return !error.has_value(); }
  void throw_if_error() const {
    if (error) throw *error;
  }
  // Output by name; throws Error(NotFound) naming the model and output.
  const Tensor& output(const std::string& name) const;
};

// Completion callback: runs exactly once per request, on a thread the callee owns (a completion
// queue thread for server answers, a worker for local inference), never inside the infer_async
// call itself unless the request fails before anything is sent (bad arguments, shut down). It must
// not block for long: park/resume an event, hand the result over, return.
using InferCallback = std::function<void(InferResult)>;

// The one asynchronous inference interface (the Client, the BatchingClient, the flow's loopback
// service, test fakes). Inputs may be reused by the caller once infer_async returns unless the
// implementation says otherwise.
class AsyncInferer {
 public:
  virtual ~AsyncInferer() = default;
  virtual void infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                           InferCallback done) = 0;
  // Largest batch (dim 0) one request for `model` may carry; 0 when there is no limit or it is
  // not known. Callers split larger work into several requests.
  virtual int64_t max_batch(const std::string& model, const std::string& version) { return 0; }
};

// The same call as a function object (what the coalescer sends through).
using AsyncInferFn =
    std::function<void(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                       InferCallback done)>;

// ---------------------------------------------------------------- fallback to local inference

enum class FallbackMode {
  Off,           // remote only: failures go to the caller
  OnFailure,     // local inference when no server can be reached or none serves the model
  OnAnyFailure,  // local inference whenever the remote request fails (rejected, timed out, errors)
  AlwaysLocal,   // never use servers (same API, e.g. for a grid site without servers)
};
// "off", "on-failure", "on-any-failure", "always-local"; throws InvalidArgument otherwise.
FallbackMode fallback_mode_from_string(const std::string& s);
const char* fallback_mode_name(FallbackMode m);

// Models that can answer in-process: a model repository in the server's layout (the client's
// fallback_repository), or the one model a flow component loaded. Thread-safe.
class LocalModels {
 public:
  virtual ~LocalModels() = default;
  // Whether `model` can be answered here (no loading: cheap, called per failed request).
  virtual bool has(const std::string& model) const = 0;
  // The model (loaded once); throws quiver::Error(NotFound) naming what is missing.
  virtual std::shared_ptr<const Model> get(const std::string& model, const std::string& version) = 0;
  // Provenance "server" of local answers: "local:<repository>" or "local:<model file>".
  virtual std::string source() const = 0;
  // Runs `model` on inputs given by name, with a pooled RunState; returns the requested outputs
  // (all when `outputs` is empty) in model order.
  std::vector<NamedTensor> run(const std::string& model, const std::string& version,
                               const std::vector<NamedTensor>& inputs, const std::vector<std::string>& outputs = {});
  // Hands states of `model` (from its make_state(), e.g. sized ahead) to those run() reuses.
  void add_states(const Model& model, std::vector<std::unique_ptr<RunState>> states);

 private:
  // RunStates of the models run here, reused across calls (models stay loaded as long as this).
  std::mutex states_mu_;
  std::map<const Model*, std::vector<std::unique_ptr<RunState>>> states_;
};

// One already loaded model that answers for `name` (and any version).
std::shared_ptr<LocalModels> single_local_model(std::shared_ptr<const Model> model, std::string name = "");

// The one fallback: when a remote request fails in a way the mode covers, the model runs in-process
// on an executor (never on the thread that reported the failure), and the result says so
// (provenance.fallback, mode "service-fallback-direct", server "local:..."). The gRPC client runs it
// for its own requests; wrap_with_fallback() puts it around any other AsyncInferer.
class Fallback {
 public:
  // Where local inference runs: a worker pool of the owner (the client's TBB task group, the flow's
  // runtime). The task must run exactly once.
  using Executor = std::function<void(std::function<void()> task)>;
  Fallback(FallbackMode mode, std::shared_ptr<LocalModels> models, Executor executor);

  FallbackMode mode() const { return mode_; }
  LocalModels& models() const { return *models_; }
  // Whether a request for `model` that ended with `code` falls back (Off never; OnFailure for
  // Unavailable / NotFound; OnAnyFailure and AlwaysLocal for every error but Cancelled).
  bool covers(const std::string& model, ErrorCode code) const;
  // Runs `model` on `inputs` on the executor and calls `done` there. Outputs never view the inputs.
  // `attempts` and `history` (what the remote attempts said) go into the provenance and errors.
  void run(const std::string& model, const InferOptions& options, std::vector<NamedTensor> inputs, int attempts,
           std::string history, InferCallback done) const;
  // The same, on the calling thread.
  InferResult run_now(const std::string& model, const InferOptions& options, const std::vector<NamedTensor>& inputs,
                      int attempts, const std::string& history) const;

 private:
  FallbackMode mode_;
  std::shared_ptr<LocalModels> models_;
  Executor executor_;
};

// `primary` with `fallback` applied to its failures. The inputs are kept until `done` has run, so
// the caller must not reuse them before (the flow's event inputs live that long).
std::shared_ptr<AsyncInferer> wrap_with_fallback(std::shared_ptr<AsyncInferer> primary,
                                                 std::shared_ptr<const Fallback> fallback);

}  // namespace quiver
