// Shared-memory regions registered by clients (Triton's system and CUDA shared-memory extensions).
// Both kinds share one namespace of region names, as in Triton. Every access is bounds-checked
// against the registered region; regions stay mapped while an in-flight request still uses them,
// even after unregistration.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::gpu {
class SharedDeviceMemory;
}

namespace quiver::serve {

enum class ShmKind { System, Cuda };

class ShmRegion {
 public:
  virtual ~ShmRegion() = default;
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  const std::string& name() const { return name_; }
  ShmKind kind() const { return kind_; }
  uint64_t byte_size() const { return byte_size_; }
  // Throws InvalidArgument naming `tensor` when [offset, offset+size) is not inside the region.
  void check(uint64_t offset, uint64_t size, const std::string& tensor) const;
  // Host address of [offset, offset+size) (checked), or nullptr when the region is device memory:
  // then read/write copy.
  virtual uint8_t* host(uint64_t offset, uint64_t size, const std::string& tensor) const = 0;
  virtual void read(uint64_t offset, void* dst, uint64_t size, const std::string& tensor) const = 0;
  virtual void write(uint64_t offset, const void* src, uint64_t size, const std::string& tensor) const = 0;

 protected:
  ShmRegion(std::string name, ShmKind kind, uint64_t byte_size)
      : name_(std::move(name)), kind_(kind), byte_size_(byte_size) {}

 private:
  std::string name_;
  ShmKind kind_;
  uint64_t byte_size_ = 0;
};

// A POSIX shared-memory object (shm_open key) mapped from `offset`.
class SystemShmRegion final : public ShmRegion {
 public:
  SystemShmRegion(std::string name, std::string key, uint64_t offset, uint64_t byte_size);
  ~SystemShmRegion() override;
  const std::string& key() const { return key_; }
  uint64_t offset() const { return offset_; }
  uint8_t* host(uint64_t offset, uint64_t size, const std::string& tensor) const override;
  void read(uint64_t offset, void* dst, uint64_t size, const std::string& tensor) const override;
  void write(uint64_t offset, const void* src, uint64_t size, const std::string& tensor) const override;

 private:
  std::string key_;
  uint64_t offset_ = 0;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  uint8_t* base_ = nullptr;
};

// Device memory of another process, opened by its CUDA IPC handle; tensors are copied in and out.
class CudaShmRegion final : public ShmRegion {
 public:
  CudaShmRegion(std::string name, std::string_view raw_handle, int64_t device_id, uint64_t byte_size,
                bool allow_emulated);
  ~CudaShmRegion() override;
  int64_t device_id() const { return device_id_; }
  uint8_t* host(uint64_t, uint64_t, const std::string&) const override { return nullptr; }
  void read(uint64_t offset, void* dst, uint64_t size, const std::string& tensor) const override;
  void write(uint64_t offset, const void* src, uint64_t size, const std::string& tensor) const override;

 private:
  int64_t device_id_ = 0;
  std::unique_ptr<gpu::SharedDeviceMemory> mem_;
};

class ShmManager {
 public:
  struct Info {
    std::string name, key;
    uint64_t offset = 0, byte_size = 0;
    int64_t device_id = 0;
  };
  // With emulation, CUDA regions may be POSIX-backed emulated device memory (testing without a GPU).
  explicit ShmManager(bool cuda_emulation = false) : cuda_emulation_(cuda_emulation) {}
  void register_region(const std::string& name, const std::string& key, uint64_t offset, uint64_t byte_size);
  void register_cuda(const std::string& name, std::string_view raw_handle, int64_t device_id, uint64_t byte_size);
  // Empty name: all regions of that kind. Throws NotFound for an unknown name.
  void unregister(const std::string& name, ShmKind kind = ShmKind::System);
  std::shared_ptr<const ShmRegion> get(const std::string& name) const;  // throws InvalidArgument
  std::vector<Info> status(const std::string& name, ShmKind kind = ShmKind::System) const;  // throws NotFound
  size_t size() const;
  // Empty when CUDA regions can be registered here, else why not (the extension is then not listed).
  std::string cuda_unavailable_reason() const;

 private:
  void add(std::shared_ptr<const ShmRegion> r);
  void check_free(const std::string& name) const;
  bool cuda_emulation_ = false;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const ShmRegion>> regions_;
};

}  // namespace quiver::serve
