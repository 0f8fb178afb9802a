// CUDA IPC memory (through libquiver_cuda_ipc.so, opened on first use) and its POSIX-backed emulation.
#include "quiver/gpu/shared_memory.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "gpu/stream.hpp"
#include "quiver/core/error.hpp"

namespace quiver::gpu {
namespace {

constexpr char kEmuMagic[8] = {'Q', 'V', 'E', 'M', 'U', 'S', 'H', 'M'};

// ---------------------------------------------------------------- CUDA
struct CudaIpc {
  int (*count)(char*, size_t) = nullptr;
  int (*exp)(int, size_t, void**, void*, char*, size_t) = nullptr;
  int (*open)(int, const void*, void**, size_t*, char*, size_t) = nullptr;
  void (*close)(int, void*, int) = nullptr;
  int (*copy)(int, void*, const void*, size_t, int, char*, size_t) = nullptr;
  int devices = 0;
  std::string error;  // why there is no usable CUDA here
};

const CudaIpc& cuda_ipc() {
  static const CudaIpc api = [] {
    CudaIpc a;
    const CudaModule m = open_cuda_module("libquiver_cuda_ipc.so");
    if (!m.handle) {
      a.error = m.error;
      return a;
    }
    a.count = reinterpret_cast<decltype(a.count)>(dlsym(m.handle, "quiver_cuda_ipc_device_count"));
    a.exp = reinterpret_cast<decltype(a.exp)>(dlsym(m.handle, "quiver_cuda_ipc_export"));
    a.open = reinterpret_cast<decltype(a.open)>(dlsym(m.handle, "quiver_cuda_ipc_open"));
    a.close = reinterpret_cast<decltype(a.close)>(dlsym(m.handle, "quiver_cuda_ipc_close"));
    a.copy = reinterpret_cast<decltype(a.copy)>(dlsym(m.handle, "quiver_cuda_ipc_copy"));
    if (!a.count || !a.exp || !a.open || !a.close || !a.copy) {
      a.error = "libquiver_cuda_ipc.so has no Quiver entry points (a different version?)";
      return a;
    }
    char why[512] = {};
    a.devices = a.count(why, sizeof why);
    if (a.devices == 0) a.error = why;
    return a;
  }();
  return api;
}

const CudaIpc& need_cuda(int device) {
  const CudaIpc& a = cuda_ipc();
  if (a.devices == 0) throw_error(ErrorCode::Unsupported, "CUDA shared memory needs a CUDA device: " + a.error);
  if (device < 0 || device >= a.devices)
    throw_error(ErrorCode::InvalidArgument, "CUDA device " + std::to_string(device) + " does not exist (" +
                                                std::to_string(a.devices) + " found)");
  return a;
}

class CudaMemory final : public SharedDeviceMemory {
 public:
  CudaMemory(std::string handle, int device, size_t size, void* ptr, bool exported)
      : SharedDeviceMemory(std::move(handle), device, size, false), ptr_(ptr), exported_(exported) {}
  ~CudaMemory() override { cuda_ipc().close(device(), ptr_, exported_ ? 1 : 0); }

 protected:
  void copy(size_t offset, void* host, size_t n, bool to_device) const override {
    char why[512] = {};
    void* dev = static_cast<char*>(ptr_) + offset;
    const int rc = to_device ? cuda_ipc().copy(device(), dev, host, n, 1, why, sizeof why)
                             : cuda_ipc().copy(device(), host, dev, n, 0, why, sizeof why);
    if (rc != 0) throw_error(ErrorCode::Internal, std::string("CUDA shared memory: ") + why);
  }

 private:
  void* ptr_;
  bool exported_;
};

// ---------------------------------------------------------------- emulation
class EmulatedMemory final : public SharedDeviceMemory {
 public:
  // `map` holds the whole `size` bytes; the exporter passes its key to unlink it at the end.
  EmulatedMemory(std::string handle, int device, size_t size, void* map, std::string unlink_key)
      : SharedDeviceMemory(std::move(handle), device, size, true), map_(map),
        unlink_(std::move(unlink_key)) {}
  ~EmulatedMemory() override {
    munmap(map_, size());
    if (!unlink_.empty()) shm_unlink(unlink_.c_str());
  }

 protected:
  void copy(size_t offset, void* host, size_t n, bool to_device) const override {
    char* dev = static_cast<char*>(map_) + offset;
    if (to_device) std::memcpy(dev, host, n);
    else std::memcpy(host, dev, n);
  }

 private:
  void* map_;
  std::string unlink_;
};

void* map_fd(int fd, size_t bytes, const std::string& key) {
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw_error(ErrorCode::Internal, "mmap of emulated device memory '" + key + "' failed: " + std::strerror(errno));
  return m;
}

std::unique_ptr<SharedDeviceMemory> allocate_emulated(int device, size_t bytes) {
  if (device != 0)
    throw_error(ErrorCode::InvalidArgument, "the emulated device is device 0, not " + std::to_string(device));
  static std::atomic<uint64_t> counter{0};  // a name generator for this process's regions, no setting
  const std::string key = "/quiver_devshm_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  const int fd = shm_open(key.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) throw_error(ErrorCode::Unavailable, "shm_open('" + key + "') failed: " + std::strerror(errno));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int e = errno;
    ::close(fd);
    shm_unlink(key.c_str());
    throw_error(ErrorCode::ResourceExhausted, "cannot size emulated device memory '" + key + "' to " +
                                                  std::to_string(bytes) + " bytes: " + std::strerror(e));
  }
  void* m = nullptr;
  try {
    m = map_fd(fd, bytes, key);
  } catch (...) {
    shm_unlink(key.c_str());
    throw;
  }
  std::string handle(kIpcHandleBytes, '\0');
  std::memcpy(handle.data(), kEmuMagic, sizeof kEmuMagic);
  key.copy(handle.data() + sizeof kEmuMagic, key.size());  // < 56 bytes: the pid and counter are short
  return std::make_unique<EmulatedMemory>(std::move(handle), device, bytes, m, key);
}

std::unique_ptr<SharedDeviceMemory> open_emulated(std::string_view handle, int device, size_t bytes) {
  if (device != 0)
    throw_error(ErrorCode::InvalidArgument, "the emulated device is device 0, not " + std::to_string(device));
  std::string_view rest = handle.substr(sizeof kEmuMagic);
  const std::string key(rest.substr(0, rest.find('\0')));
  if (key.size() < 2 || key[0] != '/' || key.find('/', 1) != std::string::npos)
    throw_error(ErrorCode::InvalidArgument, "malformed emulated CUDA IPC handle");
  const int fd = shm_open(key.c_str(), O_RDWR, 0);
  if (fd < 0)
    throw_error(ErrorCode::InvalidArgument, "emulated CUDA IPC handle names '" + key + "', which cannot be opened: " +
                                                std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < bytes) {
    const uint64_t have = static_cast<uint64_t>(st.st_size);
    ::close(fd);
    throw_error(ErrorCode::InvalidArgument, "byte_size " + std::to_string(bytes) + " exceeds the " +
                                                std::to_string(have) + "-byte device allocation behind the handle");
  }
  return std::make_unique<EmulatedMemory>(std::string(handle), device, bytes, map_fd(fd, bytes, key), "");
}

}  // namespace

std::string SharedDeviceMemory::cuda_unavailable_reason() {
  const CudaIpc& a = cuda_ipc();
  return a.devices > 0 ? std::string() : a.error;
}

std::unique_ptr<SharedDeviceMemory> SharedDeviceMemory::allocate(int device, size_t bytes, bool emulated) {
  if (bytes == 0) throw_error(ErrorCode::InvalidArgument, "shared device memory of 0 bytes");
  if (emulated) return allocate_emulated(device, bytes);
  const CudaIpc& a = need_cuda(device);
  char why[512] = {};
  void* p = nullptr;
  std::string handle(kIpcHandleBytes, '\0');
  if (a.exp(device, bytes, &p, handle.data(), why, sizeof why) != 0)
    throw_error(ErrorCode::ResourceExhausted, std::string("cannot export CUDA memory: ") + why);
  return std::make_unique<CudaMemory>(std::move(handle), device, bytes, p, true);
}

std::unique_ptr<SharedDeviceMemory> SharedDeviceMemory::open(std::string_view handle, int device, size_t bytes,
                                                             bool allow_emulated) {
  if (handle.size() != kIpcHandleBytes)
    throw_error(ErrorCode::InvalidArgument, "a CUDA IPC handle has " + std::to_string(kIpcHandleBytes) +
                                                " bytes, this one " + std::to_string(handle.size()));
  if (bytes == 0) throw_error(ErrorCode::InvalidArgument, "byte_size is 0");
  if (handle.substr(0, sizeof kEmuMagic) == std::string_view(kEmuMagic, sizeof kEmuMagic)) {
    if (!allow_emulated)
      throw_error(ErrorCode::InvalidArgument, "emulated CUDA IPC handle, but this server does not emulate CUDA "
                                              "shared memory (quiver serve --cuda-shm-emulation)");
    return open_emulated(handle, device, bytes);
  }
  const CudaIpc& a = need_cuda(device);
  char why[512] = {};
  void* p = nullptr;
  size_t have = 0;
  if (a.open(device, handle.data(), &p, &have, why, sizeof why) != 0)
    throw_error(ErrorCode::InvalidArgument, std::string("cannot open the CUDA IPC handle on device ") +
                                                std::to_string(device) + ": " + why);
  if (have != 0 && bytes > have) {
    a.close(device, p, 0);
    throw_error(ErrorCode::InvalidArgument, "byte_size " + std::to_string(bytes) + " exceeds the " +
                                                std::to_string(have) + "-byte device allocation behind the handle");
  }
  return std::make_unique<CudaMemory>(std::string(handle), device, bytes, p, false);
}

void SharedDeviceMemory::check_range(size_t offset, size_t n) const {
  if (offset > size_ || n > size_ - offset)
    throw_error(ErrorCode::InvalidArgument, "range [" + std::to_string(offset) + ", +" + std::to_string(n) +
                                                ") is outside the " + std::to_string(size_) + "-byte device memory");
}

void SharedDeviceMemory::read(size_t offset, void* dst, size_t n) const {
  check_range(offset, n);
  if (n) copy(offset, dst, n, false);
}

void SharedDeviceMemory::write(size_t offset, const void* src, size_t n) const {
  check_range(offset, n);
  if (n) copy(offset, const_cast<void*>(src), n, true);
}

}  // namespace quiver::gpu
