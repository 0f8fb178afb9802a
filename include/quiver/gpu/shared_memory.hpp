// Device memory shared between processes (Triton's CUDA shared-memory extension): a client
// allocates it and passes its CUDA IPC handle (64 bytes) to a server on the same host, which maps it
// and copies tensors in and out, so inputs and outputs never travel in the request body.
//
// The emulated variant puts the "device memory" in a POSIX shared-memory object whose name the
// handle carries. It lets clients and the server's CUDA shared-memory paths be tested on machines
// without a GPU (`quiver serve --cuda-shm-emulation`); a server only accepts such handles when told to.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace quiver::gpu {

inline constexpr size_t kIpcHandleBytes = 64;  // sizeof(cudaIpcMemHandle_t), as on the wire

class SharedDeviceMemory {
 public:
  // Exporter: `bytes` of zeroed memory on CUDA device `device` (or emulated) with a handle to pass
  // on. Throws quiver::Error: Unsupported without CUDA, InvalidArgument for a bad device.
  static std::unique_ptr<SharedDeviceMemory> allocate(int device, size_t bytes, bool emulated = false);
  // Importer: maps the memory behind `handle` on `device`; `bytes` must fit in what was exported
  // (checked where the driver tells the allocation's size). Emulated handles are refused unless
  // `allow_emulated`. Throws quiver::Error: InvalidArgument naming what was wrong with the handle,
  // Unsupported when this process has no CUDA.
  static std::unique_ptr<SharedDeviceMemory> open(std::string_view handle, int device, size_t bytes,
                                                  bool allow_emulated = false);
  // Empty when a real CUDA device can back shared memory here, else why not.
  static std::string cuda_unavailable_reason();

  virtual ~SharedDeviceMemory() = default;
  SharedDeviceMemory(const SharedDeviceMemory&) = delete;
  SharedDeviceMemory& operator=(const SharedDeviceMemory&) = delete;

  const std::string& handle() const { return handle_; }  // kIpcHandleBytes raw bytes
  int device() const { return device_; }
  size_t size() const { return size_; }
  bool emulated() const { return emulated_; }
  // Synchronous copies between host memory and [offset, offset + n) of this memory. Throw
  // InvalidArgument when the range is outside, Internal when the device reports an error.
  void read(size_t offset, void* dst, size_t n) const;
  void write(size_t offset, const void* src, size_t n) const;

 protected:
  SharedDeviceMemory(std::string handle, int device, size_t size, bool emulated)
      : handle_(std::move(handle)), device_(device), size_(size), emulated_(emulated) {}
  virtual void copy(size_t offset, void* host, size_t n, bool to_device) const = 0;

 private:
  void check_range(size_t offset, size_t n) const;
  std::string handle_;
  int device_ = 0;
  size_t size_ = 0;
  bool emulated_ = false;
};

}  // namespace quiver::gpu
