#include "quiver/serve/shm.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "quiver/core/error.hpp"

namespace quiver::serve {

ShmRegion::ShmRegion(std::string name, std::string key, uint64_t offset, uint64_t byte_size)
    : name_(std::move(name)), key_(std::move(key)), offset_(offset), byte_size_(byte_size) {
  if (key_.empty() || key_.size() > 255 || key_.find('/', 1) != std::string::npos)
    throw Error(ErrorCode::InvalidArgument, "invalid shared memory key '" + key_ + "' for region '" + name_ + "'");
  if (byte_size_ == 0) throw Error(ErrorCode::InvalidArgument, "shared memory region '" + name_ + "' has byte_size 0");
  int fd = shm_open(key_.c_str(), O_RDWR, 0);
  if (fd < 0)
    throw Error(ErrorCode::InvalidArgument, "unable to open shared memory key '" + key_ + "' for region '" + name_ +
                                                "': " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(ErrorCode::Internal, "fstat of shared memory key '" + key_ + "' failed");
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset_ > size || byte_size_ > size - offset_) {
    ::close(fd);
    throw Error(ErrorCode::InvalidArgument, "shared memory region '" + name_ + "' (offset " + std::to_string(offset_) +
                                                ", byte_size " + std::to_string(byte_size_) +
                                                ") exceeds the size of key '" + key_ + "' (" + std::to_string(size) + ")");
  }
  long page = sysconf(_SC_PAGESIZE);
  uint64_t map_off = offset_ - offset_ % static_cast<uint64_t>(page);
  map_len_ = static_cast<size_t>(offset_ - map_off + byte_size_);
  map_ = mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(map_off));
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw Error(ErrorCode::Internal, "mmap of shared memory key '" + key_ + "' failed: " + std::strerror(errno));
  }
  base_ = static_cast<uint8_t*>(map_) + (offset_ - map_off);
}

ShmRegion::~ShmRegion() {
  if (map_) munmap(map_, map_len_);
}

uint8_t* ShmRegion::at(uint64_t offset, uint64_t size, const std::string& tensor) const {
  if (offset > byte_size_ || size > byte_size_ - offset)
    throw Error(ErrorCode::InvalidArgument,
                "shared memory offset " + std::to_string(offset) + " + byte_size " + std::to_string(size) +
                    " exceeds the size " + std::to_string(byte_size_) + " of region '" + name_ + "'",
                {"", "", tensor});
  return base_ + offset;
}

void ShmManager::register_region(const std::string& name, const std::string& key, uint64_t offset,
                                 uint64_t byte_size) {
  if (name.empty()) throw Error(ErrorCode::InvalidArgument, "shared memory region name is empty");
  {
    std::lock_guard lk(mu_);
    if (regions_.count(name))
      throw Error(ErrorCode::InvalidArgument, "shared memory region '" + name + "' is already registered");
  }
  auto r = std::make_shared<const ShmRegion>(name, key, offset, byte_size);
  std::lock_guard lk(mu_);
  if (!regions_.emplace(name, std::move(r)).second)
    throw Error(ErrorCode::InvalidArgument, "shared memory region '" + name + "' is already registered");
}

void ShmManager::unregister(const std::string& name) {
  std::lock_guard lk(mu_);
  if (name.empty()) {
    regions_.clear();
    return;
  }
  if (regions_.erase(name) == 0)
    throw Error(ErrorCode::NotFound, "shared memory region '" + name + "' is not registered");
}

std::shared_ptr<const ShmRegion> ShmManager::get(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = regions_.find(name);
  if (it == regions_.end())
    throw Error(ErrorCode::InvalidArgument, "Unable to find shared memory region: '" + name + "'");
  return it->second;
}

std::vector<ShmManager::Info> ShmManager::status(const std::string& name) const {
  std::lock_guard lk(mu_);
  std::vector<Info> out;
  for (const auto& [n, r] : regions_)
    if (name.empty() || n == name) out.push_back({n, r->key(), r->offset(), r->byte_size()});
  if (!name.empty() && out.empty())
    throw Error(ErrorCode::NotFound, "shared memory region '" + name + "' is not registered");
  return out;
}

size_t ShmManager::size() const {
  std::lock_guard lk(mu_);
  return regions_.size();
}

}  // namespace quiver::serve
