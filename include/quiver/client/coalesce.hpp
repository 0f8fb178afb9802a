// Cross-event coalescing: concurrent requests for the same model (from many threads / events) are
// merged along the batch dimension (dim 0) into one RPC, up to the model's max batch or a max
// delay, and the response is split back to each caller as zero-copy slices.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "quiver/client/types.hpp"
#include "quiver/core/batching.hpp"

namespace quiver::client {

// Joining and splitting along the batch dimension (quiver/core/batching.hpp).
using quiver::concat_batch;
using quiver::split_batch;

struct CoalesceOptions {
  int64_t max_batch = 0;             // rows per RPC; 0: the model's max batch (max_batch_of); models
                                     // without a batch dim (max batch 0) are never coalesced
  int64_t max_delay_ns = 500'000;    // longest a request waits for company (0.5 ms)
};

struct CoalesceStats {
  int64_t requests = 0;    // caller requests
  int64_t rpcs = 0;        // merged requests sent
  int64_t rows = 0;        // batch rows sent
  int64_t full_flushes = 0, timer_flushes = 0, direct = 0;
};

// Merges requests and sends them through `send` (normally Client::infer_async). Requests are
// grouped by model, version, priority, requested outputs and input signature (names, dtypes,
// non-batch dims); a group is sent when its rows reach max batch, or max_delay after its first
// request (one timer thread, waiting on a condition variable until the earliest due group).
// A request that alone exceeds max batch, or has a rank-0 input, is sent on its own.
// Each caller's callback gets its own rows, its own request id, the merged RPC's provenance, or
// the merged RPC's error. The merged deadline is the earliest of its members'.
class Coalescer {
 public:
  Coalescer(AsyncInferFn send, std::function<int64_t(const std::string& model)> max_batch_of,
            CoalesceOptions options = {});
  ~Coalescer();  // sends what is pending, stops the timer thread (callbacks may still follow)
  Coalescer(const Coalescer&) = delete;
  Coalescer& operator=(const Coalescer&) = delete;

  void infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                   InferCallback done);
  CoalesceStats stats() const;

 private:
  struct Member {
    std::vector<NamedTensor> inputs;
    std::string request_id;
    int64_t rows;
    int64_t deadline_ns;  // absolute, 0 = none
    int64_t start_ns;
    InferCallback done;
  };
  struct Group {
    std::string model;
    InferOptions options;
    std::vector<Member> members;
    int64_t rows = 0;
    int64_t due_ns = 0;
  };
  void send_group(Group g);
  void timer_loop();
  int64_t limit_for(const std::string& model);

  AsyncInferFn send_;
  std::function<int64_t(const std::string&)> max_batch_of_;
  CoalesceOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Group> groups_;  // by key
  std::map<std::string, int64_t> limits_;
  bool stop_ = false;
  CoalesceStats stats_;
  std::atomic<uint64_t> next_id_{1};
  std::thread timer_;
};

}  // namespace quiver::client
