// The emulated device: host memory and plain loops behind the Stream interface. It runs the GPU
// executor's exact code path (placement, transfers, shape logic, kernels) on machines without a GPU,
// which is how CI tests it; it is not meant to be fast.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "quiver/core/error.hpp"

#define QV_HD
#include "gpu/kernels.inl"

namespace quiver::gpu {
namespace {

struct HostExec {
  template <class F>
  static void each(void*, int64_t n, F f) {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
};

class EmulatedStream final : public kern::KernelStream<HostExec> {
 public:
  std::string device_name() const override { return "gpu-emulator (host memory)"; }
  void* alloc(size_t bytes) override {
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (!p) throw_error(ErrorCode::ResourceExhausted, "emulated device: out of memory for " + std::to_string(bytes) + " bytes");
    return p;
  }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { if (bytes) std::memmove(dst, src, bytes); }
  void sync() override {}
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* Av, int64_t lda, int64_t sA,
            const void* Bv, int64_t ldb, int64_t sB, float beta, void* Cv, int64_t ldc, int64_t sC,
            int64_t batch) override {
    for (int64_t b = 0; b < batch; ++b) {
      const float* A = static_cast<const float*>(Av) + b * sA;
      const float* B = static_cast<const float*>(Bv) + b * sB;
      float* C = static_cast<float*>(Cv) + b * sC;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += double(ta ? A[k * lda + i] : A[i * lda + k]) * double(tb ? B[j * ldb + k] : B[k * ldb + j]);
          float& c = C[i * ldc + j];
          c = float(alpha * acc) + (beta == 0.f ? 0.f : beta * c);
        }
    }
  }

 protected:
  void* queue() const override { return nullptr; }
};

}  // namespace

std::unique_ptr<Stream> make_emulated_stream() { return std::make_unique<EmulatedStream>(); }

// CUDA lives in libquiver_cuda.so (kernels, cuBLAS) and libquiver_cuda_ipc.so (shared memory, the
// CUDA runtime alone), built when the toolkit is found and opened on first use: processes that never
// ask for a GPU do not map the CUDA runtime and cuBLAS.
CudaModule open_cuda_module(const char* file) {
  CudaModule m;
  std::vector<std::string> tries;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&open_cuda_module), &info) && info.dli_fname)  // next to this library first
    tries.push_back((std::filesystem::path(info.dli_fname).parent_path() / file).string());
  tries.push_back(file);
  std::string why;
  for (const auto& t : tries) {
    m.handle = dlopen(t.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (m.handle) return m;
    const char* e = dlerror();
    if (e && why.empty() && std::filesystem::exists(t)) why = e;  // there but not loadable (driver libs?)
  }
  m.error = why.empty() ? std::string("this Quiver build has no CUDA support (no ") + file +
                              "; configure with the CUDA toolkit installed, -DQUIVER_CUDA=ON)"
                        : std::string("cannot load Quiver's CUDA module ") + file + ": " + why;
  return m;
}

namespace {
struct CudaLib {
  void* handle = nullptr;
  int (*count)(char*, size_t) = nullptr;
  Stream* (*make)(int) = nullptr;
  std::string error;
};

const CudaLib& cuda_lib() {
  static const CudaLib lib = [] {
    CudaLib l;
    const CudaModule m = open_cuda_module("libquiver_cuda.so");
    l.handle = m.handle;
    if (!l.handle) {
      l.error = m.error;
      return l;
    }
    l.count = reinterpret_cast<int (*)(char*, size_t)>(dlsym(l.handle, "quiver_cuda_device_count"));
    l.make = reinterpret_cast<Stream* (*)(int)>(dlsym(l.handle, "quiver_cuda_make_stream"));
    if (!l.count || !l.make) {
      l.handle = nullptr;
      l.error = "libquiver_cuda.so has no Quiver entry points (a different version?)";
    }
    return l;
  }();
  return lib;
}
}  // namespace

bool cuda_compiled() { return cuda_lib().handle != nullptr; }

int cuda_device_count(std::string* why) {
  const CudaLib& l = cuda_lib();
  if (!l.handle) {
    if (why) *why = l.error;
    return 0;
  }
  char buf[512] = {};
  const int n = l.count(buf, sizeof buf);
  if (n == 0 && why) *why = buf;
  return n;
}

std::unique_ptr<Stream> make_cuda_stream(int device) {
  const CudaLib& l = cuda_lib();
  if (!l.handle) throw_error(ErrorCode::Unavailable, l.error);
  return std::unique_ptr<Stream>(l.make(device));
}

}  // namespace quiver::gpu
