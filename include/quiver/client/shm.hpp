// A POSIX system shared-memory region created and mapped by this process (Triton's system
// shared-memory extension): register it with a server on the same host under name(), key(), then
// tensors can be placed in it instead of in request/response bodies. Unlinked and unmapped on
// destruction (unregister it from servers first).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace quiver::client {

class SystemSharedMemory {
 public:
  // Creates "/<prefix>_<pid>_<counter>" of `bytes` (rounded up to 64), zero-filled. Throws
  // quiver::Error (Unavailable / ResourceExhausted) naming the key.
  SystemSharedMemory(const std::string& prefix, size_t bytes);
  ~SystemSharedMemory();
  SystemSharedMemory(const SystemSharedMemory&) = delete;
  SystemSharedMemory& operator=(const SystemSharedMemory&) = delete;

  const std::string& name() const { return name_; }  // region name to register (key without '/')
  const std::string& key() const { return key_; }    // shm_open key ("/...")
  char* base() const { return base_; }
  size_t bytes() const { return bytes_; }

 private:
  std::string name_, key_;
  char* base_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace quiver::client
