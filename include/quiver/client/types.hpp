// Request options, results and provenance shared by the inference client, the batching client and
// the remote Model backend.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "quiver/core/error.hpp"
#include "quiver/core/tensor.hpp"

namespace quiver::client {

struct InferOptions {
  std::string model_version;          // pin a version; empty: the server's version policy
  int64_t timeout_ns = 0;             // per-request deadline (all attempts); 0: client default
  uint32_t priority = 0;              // request priority (Triton "priority" parameter); 0: default
  std::string request_id;             // empty: the client makes a unique one
  std::vector<std::string> outputs;   // outputs to return; empty: all
};

// Where a result came from.
struct Provenance {
  std::string server;      // "host:port" of the answering server, or "local:<repository>" for fallback
  std::string model;       // model name as answered
  std::string version;     // model version as answered
  std::string checksum;    // sha256 of the model file: from the response or the cached model config
                           // ("quiver.sha256"; after model_metadata() was called); local: always
  bool fallback = false;   // answered in-process by the direct engine
  int attempts = 0;        // RPC attempts made (0 when answered locally without trying a server)
};

struct InferResult {
  std::string request_id;
  std::vector<NamedTensor> outputs;   // zero-copy views into the response message where possible
  std::optional<Error> error;         // set when the request failed
  Provenance provenance;
  int64_t client_ns = 0;              // time from call to completion as the client saw it
  bool outputs_in_shared_memory = false;  // outputs are views of the client's shared-memory slot

  bool ok() const { return !error.has_value(); }
  void throw_if_error() const {
    if (error) throw *error;
  }
  // Output by name; throws Error(NotFound) naming the model and output.
  const Tensor& output(const std::string& name) const;
};

// Completion callback: runs exactly once per request, on a client-owned thread (the completion-queue
// thread for server answers, a worker for local fallback), never inside the infer_async call
// itself unless the request fails before anything is sent (bad arguments, client shut down).
// It must not block for long: park/resume an event, hand the result over, return.
using InferCallback = std::function<void(InferResult)>;

// The shape of an asynchronous infer function (the Client, the batching client, test fakes).
using AsyncInferFn =
    std::function<void(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                       InferCallback done)>;

}  // namespace quiver::client
