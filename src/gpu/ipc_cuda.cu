// CUDA IPC memory: device memory one process exports by a handle and another maps (Triton's CUDA
// shared-memory extension). Entry points of libquiver_cuda_ipc.so, a module of its own with the CUDA
// runtime alone: a server asking whether it can offer CUDA shared memory must not map cuBLAS
// (libquiver_cuda.so: ~150 MB of RSS). Looked up by shared_memory.cpp; each returns 0 on success,
// or a CUDA error code with its text in `why`.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

int fail(cudaError_t e, const char* what, char* why, size_t n) {
  if (why && n) {
    const std::string s = std::string(what) + ": " + cudaGetErrorString(e);
    const size_t k = std::min(n - 1, s.size());
    s.copy(why, k);
    why[k] = 0;
  }
  cudaGetLastError();  // clear the non-sticky error so the thread's next CUDA call does not see it
  return static_cast<int>(e) ? static_cast<int>(e) : -1;
}

// Size of the allocation behind `p` through the driver API (no link against libcuda: the runtime
// hands out the entry point); 0 when it cannot be asked.
size_t allocation_bytes(void* p) {
  using Fn = CUresult(CUDAAPI*)(CUdeviceptr*, size_t*, CUdeviceptr);
  static Fn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &f, 3020, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      return Fn(nullptr);
    return reinterpret_cast<Fn>(f);
  }();
  if (!fn) return 0;
  CUdeviceptr base = 0;
  size_t size = 0;
  if (fn(&base, &size, reinterpret_cast<CUdeviceptr>(p)) != CUDA_SUCCESS) return 0;
  const size_t skip = reinterpret_cast<CUdeviceptr>(p) - base;
  return size > skip ? size - skip : 0;
}

}  // namespace

extern "C" {

// Number of usable CUDA devices; 0 with the reason in `why`.
__attribute__((visibility("default"))) int quiver_cuda_ipc_device_count(char* why, size_t n) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    fail(e, "no usable CUDA device", why, n);
    return 0;
  }
  if (count == 0 && why && n) std::snprintf(why, n, "no CUDA device found");
  return count;
}

// Allocates `bytes` (zeroed) on `device` and writes its 64-byte IPC handle into `handle`.
__attribute__((visibility("default"))) int quiver_cuda_ipc_export(int device, size_t bytes, void** ptr, void* handle,
                                                                  char* why, size_t n) {
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return fail(e, "cudaSetDevice", why, n);
  void* p = nullptr;
  if ((e = cudaMalloc(&p, bytes)) != cudaSuccess) return fail(e, "cudaMalloc", why, n);
  cudaIpcMemHandle_t h{};
  if ((e = cudaMemset(p, 0, bytes)) != cudaSuccess || (e = cudaIpcGetMemHandle(&h, p)) != cudaSuccess) {
    cudaFree(p);
    return fail(e, "cudaIpcGetMemHandle", why, n);
  }
  static_assert(sizeof(h) == 64, "CUDA IPC handles are 64 bytes on the wire");
  std::memcpy(handle, &h, sizeof h);
  *ptr = p;
  return 0;
}

// Maps the memory behind a 64-byte IPC handle on `device`; `bytes` receives the allocation's size
// (0 when the driver cannot tell).
__attribute__((visibility("default"))) int quiver_cuda_ipc_open(int device, const void* handle, void** ptr,
                                                                size_t* bytes, char* why, size_t n) {
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return fail(e, "cudaSetDevice", why, n);
  cudaIpcMemHandle_t h{};
  std::memcpy(&h, handle, sizeof h);
  void* p = nullptr;
  if ((e = cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess)) != cudaSuccess)
    return fail(e, "cudaIpcOpenMemHandle", why, n);
  *ptr = p;
  *bytes = allocation_bytes(p);
  return 0;
}

// Unmaps (opened) or frees (exported) device memory.
__attribute__((visibility("default"))) void quiver_cuda_ipc_close(int device, void* ptr, int exported) {
  if (cudaSetDevice(device) != cudaSuccess) return;  // runtime already gone at process exit
  if (exported) cudaFree(ptr);
  else cudaIpcCloseMemHandle(ptr);
}

// Synchronous copy between host memory and device memory of `device`.
__attribute__((visibility("default"))) int quiver_cuda_ipc_copy(int device, void* dst, const void* src, size_t bytes,
                                                                int to_device, char* why, size_t n) {
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return fail(e, "cudaSetDevice", why, n);
  if ((e = cudaMemcpy(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost)) != cudaSuccess)
    return fail(e, to_device ? "cudaMemcpy to the device" : "cudaMemcpy from the device", why, n);
  return 0;
}

}  // extern "C"
