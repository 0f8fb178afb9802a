// System shared-memory regions registered by clients (Triton's shared-memory extension).
// Every access is bounds-checked against the registered region; regions stay mapped while an
// in-flight request still uses them, even after unregistration.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace quiver::serve {

class ShmRegion {
 public:
  ShmRegion(std::string name, std::string key, uint64_t offset, uint64_t byte_size);
  ~ShmRegion();
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  const std::string& name() const { return name_; }
  const std::string& key() const { return key_; }
  uint64_t offset() const { return offset_; }
  uint64_t byte_size() const { return byte_size_; }
  // Pointer to [offset, offset+size) inside the region; throws InvalidArgument naming `tensor`
  // when the range is not inside the region.
  uint8_t* at(uint64_t offset, uint64_t size, const std::string& tensor) const;

 private:
  std::string name_, key_;
  uint64_t offset_ = 0, byte_size_ = 0;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  uint8_t* base_ = nullptr;
};

class ShmManager {
 public:
  struct Info {
    std::string name, key;
    uint64_t offset = 0, byte_size = 0;
  };
  void register_region(const std::string& name, const std::string& key, uint64_t offset, uint64_t byte_size);
  // Empty name: all regions. Throws NotFound for an unknown name.
  void unregister(const std::string& name);
  std::shared_ptr<const ShmRegion> get(const std::string& name) const;  // throws InvalidArgument
  std::vector<Info> status(const std::string& name) const;              // throws NotFound
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const ShmRegion>> regions_;
};

}  // namespace quiver::serve
