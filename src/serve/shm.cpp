#include "serve/shm.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "quiver/core/error.hpp"
#include "quiver/gpu/shared_memory.hpp"

namespace quiver::serve {

void ShmRegion::check(uint64_t offset, uint64_t size, const std::string& tensor) const {
  if (offset > byte_size_ || size > byte_size_ - offset)
    throw Error(ErrorCode::InvalidArgument,
                "shared memory offset " + std::to_string(offset) + " + byte_size " + std::to_string(size) +
                    " exceeds the size " + std::to_string(byte_size_) + " of region '" + name_ + "'",
                {"", "", tensor});
}

// ---------------------------------------------------------------- system
SystemShmRegion::SystemShmRegion(std::string name, std::string key, uint64_t offset, uint64_t byte_size)
    : ShmRegion(std::move(name), ShmKind::System, byte_size), key_(std::move(key)), offset_(offset) {
  if (key_.empty() || key_.size() > 255 || key_.find('/', 1) != std::string::npos)
    throw Error(ErrorCode::InvalidArgument, "invalid shared memory key '" + key_ + "' for region '" + this->name() + "'");
  if (byte_size == 0) throw Error(ErrorCode::InvalidArgument, "shared memory region '" + this->name() + "' has byte_size 0");
  int fd = shm_open(key_.c_str(), O_RDWR, 0);
  if (fd < 0)
    throw Error(ErrorCode::InvalidArgument, "unable to open shared memory key '" + key_ + "' for region '" +
                                                this->name() + "': " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(ErrorCode::Internal, "fstat of shared memory key '" + key_ + "' failed");
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset_ > size || byte_size > size - offset_) {
    ::close(fd);
    throw Error(ErrorCode::InvalidArgument, "shared memory region '" + this->name() + "' (offset " +
                                                std::to_string(offset_) + ", byte_size " + std::to_string(byte_size) +
                                                ") exceeds the size of key '" + key_ + "' (" + std::to_string(size) + ")");
  }
  long page = sysconf(_SC_PAGESIZE);
  uint64_t map_off = offset_ - offset_ % static_cast<uint64_t>(page);
  map_len_ = static_cast<size_t>(offset_ - map_off + byte_size);
  map_ = mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(map_off));
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw Error(ErrorCode::Internal, "mmap of shared memory key '" + key_ + "' failed: " + std::strerror(errno));
  }
  base_ = static_cast<uint8_t*>(map_) + (offset_ - map_off);
}

SystemShmRegion::~SystemShmRegion() {
  if (map_) munmap(map_, map_len_);
}

uint8_t* SystemShmRegion::host(uint64_t offset, uint64_t size, const std::string& tensor) const {
  check(offset, size, tensor);
  return base_ + offset;
}

void SystemShmRegion::read(uint64_t offset, void* dst, uint64_t size, const std::string& tensor) const {
  if (size) std::memcpy(dst, host(offset, size, tensor), size);
}

void SystemShmRegion::write(uint64_t offset, const void* src, uint64_t size, const std::string& tensor) const {
  if (size) std::memcpy(host(offset, size, tensor), src, size);
}

// ---------------------------------------------------------------- CUDA
CudaShmRegion::CudaShmRegion(std::string name, std::string_view raw_handle, int64_t device_id, uint64_t byte_size,
                             bool allow_emulated)
    : ShmRegion(std::move(name), ShmKind::Cuda, byte_size), device_id_(device_id) {
  if (byte_size == 0)
    throw Error(ErrorCode::InvalidArgument, "CUDA shared memory region '" + this->name() + "' has byte_size 0");
  if (device_id < 0 || device_id > 1024)
    throw Error(ErrorCode::InvalidArgument, "CUDA shared memory region '" + this->name() + "': device_id " +
                                                std::to_string(device_id) + " is not a device");
  try {
    mem_ = gpu::SharedDeviceMemory::open(raw_handle, static_cast<int>(device_id), byte_size, allow_emulated);
  } catch (const Error& e) {
    throw Error(e.code(), "failed to register CUDA shared memory region '" + this->name() + "': " + e.message());
  }
}

CudaShmRegion::~CudaShmRegion() = default;

void CudaShmRegion::read(uint64_t offset, void* dst, uint64_t size, const std::string& tensor) const {
  check(offset, size, tensor);
  mem_->read(offset, dst, size);
}

void CudaShmRegion::write(uint64_t offset, const void* src, uint64_t size, const std::string& tensor) const {
  check(offset, size, tensor);
  mem_->write(offset, src, size);
}

// ---------------------------------------------------------------- manager
void ShmManager::check_free(const std::string& name) const {
  if (name.empty()) throw Error(ErrorCode::InvalidArgument, "shared memory region name is empty");
  std::lock_guard lk(mu_);
  if (regions_.count(name))
    throw Error(ErrorCode::InvalidArgument, "shared memory region '" + name + "' is already registered");
}

void ShmManager::add(std::shared_ptr<const ShmRegion> r) {
  std::lock_guard lk(mu_);
  const std::string name = r->name();
  if (!regions_.emplace(name, std::move(r)).second)
    throw Error(ErrorCode::InvalidArgument, "shared memory region '" + name + "' is already registered");
}

void ShmManager::register_region(const std::string& name, const std::string& key, uint64_t offset,
                                 uint64_t byte_size) {
  check_free(name);  // before mapping: a taken name fails without touching the key
  add(std::make_shared<const SystemShmRegion>(name, key, offset, byte_size));
}

void ShmManager::register_cuda(const std::string& name, std::string_view raw_handle, int64_t device_id,
                               uint64_t byte_size) {
  check_free(name);
  add(std::make_shared<const CudaShmRegion>(name, raw_handle, device_id, byte_size, cuda_emulation_));
}

void ShmManager::unregister(const std::string& name, ShmKind kind) {
  std::lock_guard lk(mu_);
  if (name.empty()) {
    std::erase_if(regions_, [&](const auto& kv) { return kv.second->kind() == kind; });
    return;
  }
  auto it = regions_.find(name);
  if (it == regions_.end() || it->second->kind() != kind)
    throw Error(ErrorCode::NotFound, std::string(kind == ShmKind::Cuda ? "CUDA" : "system") +
                                         " shared memory region '" + name + "' is not registered");
  regions_.erase(it);
}

std::shared_ptr<const ShmRegion> ShmManager::get(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = regions_.find(name);
  if (it == regions_.end())
    throw Error(ErrorCode::InvalidArgument, "Unable to find shared memory region: '" + name + "'");
  return it->second;
}

std::vector<ShmManager::Info> ShmManager::status(const std::string& name, ShmKind kind) const {
  std::lock_guard lk(mu_);
  std::vector<Info> out;
  for (const auto& [n, r] : regions_) {
    if (r->kind() != kind || (!name.empty() && n != name)) continue;
    Info i{n, "", 0, r->byte_size(), 0};
    if (const auto* s = dynamic_cast<const SystemShmRegion*>(r.get())) i.key = s->key(), i.offset = s->offset();
    if (const auto* c = dynamic_cast<const CudaShmRegion*>(r.get())) i.device_id = c->device_id();
    out.push_back(std::move(i));
  }
  if (!name.empty() && out.empty())
    throw Error(ErrorCode::NotFound, std::string(kind == ShmKind::Cuda ? "CUDA" : "system") +
                                         " shared memory region '" + name + "' is not registered");
  return out;
}

size_t ShmManager::size() const {
  std::lock_guard lk(mu_);
  return regions_.size();
}

std::string ShmManager::cuda_unavailable_reason() const {
  return cuda_emulation_ ? std::string() : gpu::SharedDeviceMemory::cuda_unavailable_reason();
}

}  // namespace quiver::serve
