// The client's request engine: one request from infer_async to its callback. Encodes the request
// once (inputs into the message or a shared-memory slot), sends attempts on one gRPC completion
// queue served by client-owned threads, retries on the same or another server (RetryPolicy,
// backoff on gRPC alarms), hands a request the servers cannot answer to the fallback, and delivers
// every request exactly once. Shutdown cancels what is in flight and waits for it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/completion_queue.h>

#include "grpc_service.pb.h"
#include "quiver/client/client.hpp"

namespace quiver::client {

class ServerSet;
class MetadataCache;
class ShmPool;

class RequestEngine {
 public:
  struct Counters {
    std::atomic<int64_t> requests{0}, completed{0}, failed{0}, retries{0}, fallbacks{0};
  };

  // `shm` and `fallback` may be null (off). `workers` runs local fallbacks.
  RequestEngine(const ClientOptions& opt, uint64_t client_id, ServerSet& servers, MetadataCache& meta,
                std::shared_ptr<ShmPool> shm, std::shared_ptr<const Fallback> fallback, Fallback::Executor workers);
  ~RequestEngine();
  RequestEngine(const RequestEngine&) = delete;
  RequestEngine& operator=(const RequestEngine&) = delete;

  void start();  // the completion-queue threads
  // Cancels every attempt and retry timer in flight and waits until every request has been
  // delivered (new requests fail with Cancelled from then on).
  void drain();
  // Stops the completion-queue threads; after drain() and after the workers are idle.
  void stop();

  void infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                   InferCallback done);
  const Counters& counters() const { return counters_; }

 private:
  struct Tag;
  struct Request;
  struct Attempt;
  struct RetryTimer;
  struct Deferred;
  using RequestPtr = std::shared_ptr<Request>;

  bool link(Tag* t);
  void unlink(Tag* t);
  // Delivers the result: at once on a client thread, or, while infer_async has not yet returned
  // to its caller, through the completion queue (`done` never runs inside infer_async: a
  // callback that issues the next request must not recurse when every request fails at once).
  void deliver(const RequestPtr& req, InferResult r);
  void deliver_now(const RequestPtr& req, InferResult r);
  void fail(const RequestPtr& req, ErrorCode code, std::string msg);
  void fail_or_fall_back(const RequestPtr& req, ErrorCode code, std::string msg);
  void start_attempt(const RequestPtr& req);
  void on_attempt_done(Attempt* a);
  void final_failure(const RequestPtr& req, AttemptError kind);
  void no_server(const RequestPtr& req);
  bool can_fallback(const RequestPtr& req, ErrorCode code) const;
  void run_local(const RequestPtr& req);
  void finish_ok(const RequestPtr& req, const std::shared_ptr<inference::ModelInferResponse>& resp,
                 const ServerState& s);
  std::string describe_log(const RequestPtr& req) const;

  const ClientOptions& opt_;
  const uint64_t client_id_;
  ServerSet& servers_;
  MetadataCache& meta_;
  std::shared_ptr<ShmPool> shm_;  // output tensors viewing a slot keep the mapping
  std::shared_ptr<const Fallback> fallback_;
  Fallback::Executor workers_;
  grpc::CompletionQueue cq_;
  std::vector<std::thread> cq_threads_;
  bool stopped_ = false;
  // The completion-queue threads run (between start and stop): deferred deliveries can be posted.
  std::atomic<bool> cq_running_{false};
  std::atomic<uint64_t> next_id_{1};
  Counters counters_;

  // In-flight tags (attempts and retry timers), for cancellation at shutdown.
  std::mutex inflight_mu_;
  Tag* inflight_head_ = nullptr;
  bool shutting_down_ = false;
  int64_t open_requests_ = 0;
  std::condition_variable drained_cv_;
};

}  // namespace quiver::client
