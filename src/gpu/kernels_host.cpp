// The emulated device: host memory and plain loops behind the Stream interface. It runs the GPU
// executor's exact code path (placement, transfers, shape logic, kernels) on machines without a GPU,
// which is how CI tests it; it is not meant to be fast.
#include <cstdlib>
#include <cstring>

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

#ifndef QUIVER_HAVE_CUDA
bool cuda_compiled() { return false; }
int cuda_device_count(std::string* why) {
  if (why) *why = "this Quiver build has no CUDA support (configure with the CUDA toolkit installed, -DQUIVER_CUDA=ON)";
  return 0;
}
std::unique_ptr<Stream> make_cuda_stream(int) {
  std::string why;
  cuda_device_count(&why);
  throw_error(ErrorCode::Unavailable, why);
}
#endif

}  // namespace quiver::gpu
