// KServe v2 HTTP/REST client for one server (`quiver serve` or Triton), on cpp-httplib with one
// keep-alive connection. Tensors travel with the binary tensor data extension
// (`Inference-Header-Content-Length`: JSON header, then the raw bytes of each tensor; BYTES as
// 4-byte little-endian length + bytes per element); JSON "data" outputs are decoded too.
//
//   quiver::client::HttpClient c("127.0.0.1:8000");
//   auto r = c.infer("mlp", {{"x", x}});   r.throw_if_error();
//
// Not thread-safe: one HttpClient per thread (quiver perf -i http gives each concurrent worker its
// own). Synchronous: infer() blocks until the answer or the timeout. For many servers, failover,
// fallback and asynchronous calls use the gRPC Client (client.hpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quiver/client/client.hpp"
#include "quiver/client/types.hpp"

namespace quiver::client {

struct HttpOptions {
  int64_t connect_timeout_ns = 2'000'000'000;
  int64_t timeout_ns = 60'000'000'000;  // read/write timeout of one call (a request's own
                                        // InferOptions.timeout_ns replaces it for that call)
  bool binary_data = true;              // inputs and outputs as binary tensor data; false: JSON "data"
  bool gzip = false;                    // gzip-compress request bodies (Content-Encoding: gzip)
  std::string auth_token_file;          // its first token goes out as "Authorization: Bearer TOKEN"
};

// A model's inference statistics, summed over its versions (KServe v2 statistics extension).
struct InferenceStats {
  uint64_t success_count = 0, success_ns = 0, fail_count = 0, queue_count = 0, queue_ns = 0;
  uint64_t compute_input_ns = 0, compute_infer_ns = 0, compute_output_ns = 0;
  uint64_t inference_count = 0, execution_count = 0;
};

// Where one request's tensors go in a system shared-memory region registered with the server
// (SystemSharedMemory + register_system_shared_memory): inputs packed from `offset` (64-byte
// aligned), then the named outputs, which the server writes there. Sizes of the outputs must be
// known in advance (from the model metadata); a server that needs more space fails the request
// (InvalidArgument naming the output).
struct HttpShmSlot {
  std::string region;                 // registered name
  char* base = nullptr;               // this process's mapping of the region
  uint64_t offset = 0, byte_size = 0; // this request's part of the region (inside the mapping:
                                      // the client writes inputs there)
  bool inputs = true;                 // inputs through the slot (BYTES inputs travel in the body)
  std::vector<std::pair<std::string, uint64_t>> outputs;  // name, bytes; empty: outputs in the body
};

class HttpClient {
 public:
  // address: "HOST:PORT", "[V6]:PORT" or "http://HOST:PORT".
  explicit HttpClient(const std::string& address, HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  const std::string& address() const;
  // GET /v2/health/ready: true when the server answers 200; `why` gets the reason otherwise.
  bool server_ready(std::string* why = nullptr);
  // Metadata + config (max_batch_size, sha256). Throws quiver::Error (NotFound, Unavailable, ...).
  ModelMeta model_metadata(const std::string& model, const std::string& version = "");
  // Never throws for server/transport errors: they are in the result (code from the HTTP status:
  // 400 InvalidArgument, 404 NotFound, 429 ResourceExhausted, 501 Unsupported, 503 Unavailable
  // (and connection failures), 504 DeadlineExceeded, else Internal). Binary outputs are zero-copy
  // views into the response body.
  InferResult infer(const std::string& model, const std::vector<NamedTensor>& inputs, const InferOptions& options = {});
  // The same through shared memory. Outputs in the slot are zero-copy views of it, valid while the
  // mapping lives and the slot is not reused (clone() them to keep them longer);
  // result.outputs_in_shared_memory says which way they came.
  InferResult infer(const std::string& model, const std::vector<NamedTensor>& inputs, const InferOptions& options,
                    const HttpShmSlot& slot);
  // GET /v2/models/<model>[/versions/<v>]/stats. Throws quiver::Error.
  InferenceStats model_statistics(const std::string& model, const std::string& version = "");
  // System shared-memory extension. Throw quiver::Error.
  void register_system_shared_memory(const std::string& name, const std::string& key, uint64_t offset,
                                     uint64_t byte_size);
  void unregister_system_shared_memory(const std::string& name);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::client
