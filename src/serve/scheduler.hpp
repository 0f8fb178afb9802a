// Request scheduling for one loaded model version: a queue with priority levels and a queue
// policy, an optional dynamic batcher (preferred sizes, max queue delay, shape-compatible
// batching, preserve_ordering), and N execution instances (instance_group count) running in
// parallel on one shared immutable Model, each with its own RunState. Also keeps the per-model
// statistics reported by ModelStatistics and the metrics endpoint.
#pragma once
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "quiver/backends/backends.hpp"
#include "quiver/core/model.hpp"
#include "serve/status.hpp"

namespace quiver::serve {

struct QueuePolicy {
  bool delay_on_timeout = false;  // TimeoutAction DELAY (else REJECT)
  uint64_t default_timeout_us = 0;
  bool allow_timeout_override = false;
  uint32_t max_queue_size = 0;  // 0: unbounded
};

struct SchedulerOptions {
  int instances = 1;
  int64_t max_batch = 0;        // model max_batch_size; 0: no batch dim
  bool dynamic_batching = false;
  std::vector<int64_t> preferred_batch_sizes;
  uint64_t max_queue_delay_us = 0;
  bool preserve_ordering = false;
  uint64_t priority_levels = 0;  // 0: one level
  uint64_t default_priority = 0;
  QueuePolicy default_policy;
  std::map<uint64_t, QueuePolicy> priority_policy;
};

// One inference request after decoding and validation. Inputs are in model input order; they may
// view memory owned by the transport (gRPC message, HTTP body, shared memory) that stays alive
// until `complete` has been called.
struct InferRequest {
  std::vector<Tensor> inputs;
  int64_t batch = 1;            // dim 0 when the model batches, else 1
  uint64_t priority = 0;        // 0: the model's default level
  uint64_t timeout_us = 0;      // 0: the policy's default
  int64_t arrival_ns = 0;
  // Called exactly once, on a scheduler thread (or the caller's thread for immediate rejection).
  // `outputs` (model output order) are valid only during the call.
  std::function<void(const Status&, FailReason, std::span<const Tensor> outputs)> complete;
};

struct Duration {
  uint64_t count = 0;
  uint64_t ns = 0;
  void add(uint64_t n) { ++count; ns += n; }
};

struct StatsSnapshot {
  uint64_t last_inference_ms = 0;
  uint64_t inference_count = 0;
  uint64_t execution_count = 0;
  Duration success, fail, queue, compute_input, compute_infer, compute_output;
  std::map<uint64_t, std::array<Duration, 3>> batch;  // size -> input, infer, output
  std::map<FailReason, uint64_t> failures;
  uint64_t pending = 0;  // requests queued or executing
};

// "" when the snapshot is consistent the way perf_analyzer needs it ("Server side statistics
// compute counts must be the same"): every successful request in success, queue and all three
// compute counts, every execution in each of its batch-size counts, the batch sizes adding up to
// inference_count; otherwise which counts differ. Every snapshot Scheduler::stats() takes holds it.
std::string stats_inconsistency(const StatsSnapshot& s);

class Scheduler {
 public:
  Scheduler(std::shared_ptr<const Model> model, SchedulerOptions opt, std::string label);
  ~Scheduler();  // drains: finishes everything queued, then joins
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues the request (or rejects it through its callback: queue full, shutting down).
  void enqueue(std::unique_ptr<InferRequest> req);
  // Stop accepting; queued requests still run. Idempotent.
  void stop();
  // Blocks until no request is queued or executing.
  void drain();
  StatsSnapshot stats() const;
  // A request that failed before reaching the queue (decoding / validation).
  void count_failure(FailReason why, int64_t ns);
  // model_warmup: runs `inputs` `count` times on every execution state (the instance threads' and
  // as many for inline execution) before the first request; not counted in the statistics.
  // Call before the scheduler serves. Throws what the model throws.
  void warm_up(std::span<const Tensor> inputs, int count);
  // Sizes every execution state ahead (prepare_states): at `configured` (the config's prepare_state
  // parameter, "" when absent), else at the batch the batcher forms (the largest preferred size,
  // else max_batch) or, without dynamic batching, at batch 1. Call before the scheduler serves.
  PrepareReport prepare(const std::string& configured, const ErrorWhere& where);
  // Bytes the execution states hold now (state_bytes). Only while no request runs (after drain()).
  size_t state_bytes() const;
  // True when called from one of this scheduler's instance threads.
  bool on_worker_thread() const;
  const SchedulerOptions& options() const { return opt_; }
  const Model& model() const { return *model_; }

 private:
  struct Pending {
    std::unique_ptr<InferRequest> req;
    uint64_t seq = 0;
    int64_t deadline_ns = 0;  // 0: none
    bool delayed = false;     // timed out with DELAY action
    size_t level = 0;
  };
  struct Instance;
  struct Responses;
  std::unique_ptr<Instance> new_instance() const;  // with a fresh run state of the model
  void worker(Instance& inst);
  // With dynamic batching each instance thread has a responder thread: the instance hands it a
  // finished batch (its outputs copied) and runs the next batch meanwhile, instead of slicing,
  // encoding and sending every response itself (the transport's send may run on the calling
  // thread: ~9-25 us per row, a fifth of a batch's time on small models, serial on the instance).
  void responder(Instance& inst);
  // Answers a finished batch: each request gets its rows of every output (views during the call).
  void respond(std::vector<Pending>& batch, std::span<const Tensor> outputs, int64_t total);
  // Picks the next batch under lock; may wait for the batching delay. Returns empty to exit.
  std::vector<Pending> next_batch(std::unique_lock<std::mutex>& lk, std::vector<Pending>& rejected);
  void execute(Instance& inst, std::vector<Pending>& batch);
  void finish(Pending& p, const Status& st, FailReason why, std::span<const Tensor> outputs, int64_t exec_start);
  void deliver_ordered(uint64_t seq, std::function<void()> fn);
  const QueuePolicy& policy(size_t level) const;
  bool compatible(const InferRequest& a, const InferRequest& b) const;

  std::shared_ptr<const Model> model_;
  SchedulerOptions opt_;
  std::string label_;
  size_t levels_ = 1;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // work available / stop
  std::condition_variable idle_cv_;  // pending reached zero
  std::vector<std::deque<Pending>> queues_;   // per priority level, then delayed
  std::vector<std::deque<Pending>> delayed_;
  size_t queued_ = 0;
  int64_t queued_rows_ = 0;  // the queued requests' rows (their batch sizes)
  // Workers waiting for any work, and workers waiting for a batch to fill until delay_wake_ns_
  // (the earliest of their deadlines). An arrival wakes a filling worker only when that can change
  // what it decides (enough rows for a full batch, a preferred size, an earlier expiry): woken for
  // every request, it paid a futex wake and a pass over the queue per request under load.
  int idle_waiters_ = 0;
  int delay_waiters_ = 0;
  int64_t delay_wake_ns_ = INT64_MAX;
  // No request in queues_ expires before this (a lower bound): next_batch looks for expired ones
  // only from then, not through the whole queue for every batch (thousands queued under load).
  int64_t next_deadline_ns_ = INT64_MAX;
  uint64_t in_flight_ = 0;  // queued + executing
  uint64_t next_seq_ = 0;
  bool stopping_ = false;
  std::vector<std::unique_ptr<Instance>> instances_;  // one per worker thread
  // Executions in progress (worker threads + inline on the caller's thread); at most
  // opt_.instances. Without dynamic batching, a request that finds the queue empty and an
  // instance free runs directly on the calling (transport) thread: no thread hand-off.
  int busy_ = 0;
  std::vector<std::unique_ptr<Instance>> spare_;  // states for inline execution
  std::atomic<int64_t> avg_exec_ns_{0};

  // preserve_ordering
  std::mutex order_mu_;
  uint64_t next_deliver_ = 0;
  std::map<uint64_t, std::function<void()>> ready_;

  // statistics
  mutable std::mutex stats_mu_;
  StatsSnapshot stats_;
};

}  // namespace quiver::serve
