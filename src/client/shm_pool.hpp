// The client's system shared-memory pool (Triton's shared-memory extension): one region of
// fixed-size slots that the client maps and registers with every server as it comes in. A request
// holds a slot for its inputs and/or outputs until it completes (with shared-memory outputs, until
// the last output tensor viewing the slot is gone).
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kserve/infer_messages.hpp"
#include "quiver/client/balancer.hpp"
#include "quiver/client/client.hpp"

namespace quiver::client {

class ShmPool {
 public:
  // Creates and maps /quiver_client_<pid>_<client_id>; throws Unavailable / ResourceExhausted.
  ShmPool(int slots, int64_t slot_bytes, uint64_t client_id);
  ~ShmPool();
  ShmPool(const ShmPool&) = delete;
  ShmPool& operator=(const ShmPool&) = delete;

  // A free slot, or -1 when all are in use.
  int acquire();
  // `hold_ns` > 0: the slot is reused only after that long (a server may still write outputs of a
  // request the client gave up on).
  void release(int s, int64_t hold_ns = 0);
  const std::string& name() const { return name_; }
  const std::string& key() const { return key_; }
  size_t bytes() const { return bytes_; }
  int64_t slot_bytes() const { return slot_bytes_; }
  char* base() const { return base_; }

  // (Re-)registers the region with a server coming in (a restarted server has forgotten it; a
  // returning one may still have it, hence unregister first). False (and a message on stderr) when
  // the server refuses: it is kept out of service.
  bool register_with(ServerState& s, int64_t timeout_ns) const;
  // Lets servers unmap the region now rather than when they next see it (client shutdown).
  void unregister_from(const std::vector<std::shared_ptr<ServerState>>& servers) const;

 private:
  std::string name_, key_;
  int64_t slot_bytes_;
  size_t bytes_ = 0;
  char* base_ = nullptr;
  std::mutex mu_;
  std::vector<int> free_;
  std::deque<std::pair<int64_t, int>> quarantine_;  // (reusable at ns, slot), in time order
};

// A request's hold on its slot; output tensors in the slot share it.
struct SlotLease {
  SlotLease(std::shared_ptr<ShmPool> p, int s) : pool(std::move(p)), slot(s) {}
  ~SlotLease() { pool->release(slot, hold_ns.load()); }
  std::shared_ptr<ShmPool> pool;
  const int slot;
  std::atomic<int64_t> hold_ns{0};
};

// How long a failed request's slot stays out of use when outputs were to be written there.
inline constexpr int64_t kShmQuarantineNs = 5'000'000'000;

// Output sizes for shared-memory outputs, from the model's metadata (batch dimension = the first
// input's first dimension): false for BYTES outputs, dimensions other than the batch that are
// dynamic, or requested names the metadata lacks. `bytes` is the space they need (64-byte aligned).
bool plan_shm_outputs(const ModelMeta& meta, const InferOptions& o, const std::vector<NamedTensor>& inputs,
                      std::vector<kserve::ShmTarget::Output>& outs, int64_t& bytes);

// Where a request's data goes in the pool.
struct ShmPlacement {
  std::shared_ptr<SlotLease> lease;  // null: everything travels in the message
  bool inputs = false, outputs = false;
  kserve::ShmTarget target;
};
// Takes a slot for the inputs when they all fit one (no BYTES) and for `outs` (planned outputs,
// `out_bytes` of them; empty: none) when they fit after the inputs. No slot free: the message.
ShmPlacement place_in_pool(const std::shared_ptr<ShmPool>& pool, const std::vector<NamedTensor>& inputs,
                           std::vector<kserve::ShmTarget::Output> outs, int64_t out_bytes);

}  // namespace quiver::client
