#include "client/shm_pool.hpp"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "client/server_set.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

namespace pb = inference;

ShmPool::ShmPool(int slots, int64_t slot_bytes, uint64_t client_id) : slot_bytes_((slot_bytes + 63) / 64 * 64) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "/quiver_client_%d_%016llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(client_id));
  key_ = buf;
  name_ = key_.substr(1);
  bytes_ = static_cast<size_t>(slot_bytes_) * static_cast<size_t>(slots);
  int fd = ::shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) throw Error(ErrorCode::Unavailable, "cannot create shared memory " + key_ + ": " + std::strerror(errno));
  if (::ftruncate(fd, static_cast<off_t>(bytes_)) != 0) {
    ::close(fd);
    ::shm_unlink(key_.c_str());
    throw Error(ErrorCode::ResourceExhausted, "cannot size shared memory " + key_ + ": " + std::strerror(errno));
  }
  void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) {
    ::shm_unlink(key_.c_str());
    throw Error(ErrorCode::ResourceExhausted, "cannot map shared memory " + key_ + ": " + std::strerror(errno));
  }
  base_ = static_cast<char*>(p);
  for (int i = slots - 1; i >= 0; --i) free_.push_back(i);
}

ShmPool::~ShmPool() {
  ::munmap(base_, bytes_);
  ::shm_unlink(key_.c_str());
}

int ShmPool::acquire() {
  std::lock_guard lk(mu_);
  if (!quarantine_.empty()) {
    const int64_t now = now_ns();
    while (!quarantine_.empty() && quarantine_.front().first <= now) {
      free_.push_back(quarantine_.front().second);
      quarantine_.pop_front();
    }
  }
  if (free_.empty()) return -1;
  int s = free_.back();
  free_.pop_back();
  return s;
}

void ShmPool::release(int s, int64_t hold_ns) {
  std::lock_guard lk(mu_);
  if (hold_ns > 0) quarantine_.emplace_back(now_ns() + hold_ns, s);
  else free_.push_back(s);
}

bool ShmPool::register_with(ServerState& s, int64_t timeout_ns) const {
  auto& stub = ServerSet::stub(s);
  const auto dl = std::chrono::system_clock::now() + std::chrono::nanoseconds(timeout_ns);
  {
    grpc::ClientContext c;
    c.set_deadline(dl);
    ServerSet::authorize(s, c);
    pb::SystemSharedMemoryUnregisterRequest q;
    q.set_name(name_);
    pb::SystemSharedMemoryUnregisterResponse r;
    stub.SystemSharedMemoryUnregister(&c, q, &r);  // NOT_FOUND is fine
  }
  grpc::ClientContext c;
  c.set_deadline(dl);
  ServerSet::authorize(s, c);
  pb::SystemSharedMemoryRegisterRequest q;
  q.set_name(name_);
  q.set_key(key_);
  q.set_offset(0);
  q.set_byte_size(bytes_);
  pb::SystemSharedMemoryRegisterResponse r;
  grpc::Status st = stub.SystemSharedMemoryRegister(&c, q, &r);
  if (!st.ok())
    std::fprintf(stderr, "quiver client: %s cannot register shared memory %s (%s: %s); server kept out\n",
                 s.address.c_str(), key_.c_str(), grpc_status_name(st.error_code()), st.error_message().c_str());
  return st.ok();
}

void ShmPool::unregister_from(const std::vector<std::shared_ptr<ServerState>>& servers) const {
  for (auto& sv : servers) {
    if (!sv->transport || !sv->serving.load()) continue;
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    ServerSet::authorize(*sv, c);
    pb::SystemSharedMemoryUnregisterRequest q;
    q.set_name(name_);
    pb::SystemSharedMemoryUnregisterResponse r;
    ServerSet::stub(*sv).SystemSharedMemoryUnregister(&c, q, &r);
  }
}

bool plan_shm_outputs(const ModelMeta& meta, const InferOptions& o, const std::vector<NamedTensor>& inputs,
                      std::vector<kserve::ShmTarget::Output>& outs, int64_t& bytes) {
  const ModelInfo& info = meta.info;
  int64_t batch = 1;
  if (info.max_batch > 0) {
    if (inputs.empty() || !inputs[0].tensor.defined() || inputs[0].tensor.rank() == 0) return false;
    batch = inputs[0].tensor.dim(0);
  }
  bytes = 0;
  outs.clear();
  for (const auto& ti : info.outputs) {
    if (!o.outputs.empty() && std::find(o.outputs.begin(), o.outputs.end(), ti.name) == o.outputs.end()) continue;
    if (ti.dtype == DType::String || ti.dtype == DType::Undefined) return false;
    int64_t n = 1;
    for (size_t i = 0; i < ti.shape.size(); ++i) {
      if (i == 0 && info.max_batch > 0) n *= batch;
      else if (ti.shape[i].is_fixed()) n *= ti.shape[i].value;
      else return false;
    }
    const uint64_t b = static_cast<uint64_t>(n) * dtype_size(ti.dtype);
    outs.push_back({ti.name, 0, b});
    bytes += static_cast<int64_t>((b + 63) / 64 * 64);
  }
  if (!o.outputs.empty() && outs.size() != o.outputs.size()) return false;  // unknown names: the server says so
  return !outs.empty();
}

ShmPlacement place_in_pool(const std::shared_ptr<ShmPool>& pool, const std::vector<NamedTensor>& inputs,
                           std::vector<kserve::ShmTarget::Output> outs, int64_t out_bytes) {
  ShmPlacement p;
  int64_t need = 0;
  bool ok = true;
  for (auto& in : inputs) {
    ok = ok && in.tensor.defined() && in.tensor.dtype() != DType::String;
    need += (static_cast<int64_t>(in.tensor.nbytes()) + 63) / 64 * 64;
  }
  const bool use_in = ok && need <= pool->slot_bytes();
  const bool use_out = !outs.empty() && (use_in ? need : 0) + out_bytes <= pool->slot_bytes();
  if (!use_in && !use_out) return p;
  const int slot = pool->acquire();
  if (slot < 0) return p;
  p.lease = std::make_shared<SlotLease>(pool, slot);
  p.inputs = use_in;
  p.outputs = use_out;
  p.target.region = pool->name();
  p.target.base = pool->base();
  p.target.offset = static_cast<uint64_t>(slot) * static_cast<uint64_t>(pool->slot_bytes());
  p.target.inputs = use_in;
  if (use_out) {
    uint64_t at = p.target.offset + static_cast<uint64_t>(use_in ? need : 0);
    for (auto& so : outs) {
      so.offset = at;
      at += (so.byte_size + 63) / 64 * 64;
    }
    p.target.outputs = std::move(outs);
  }
  return p;
}

}  // namespace quiver::client
