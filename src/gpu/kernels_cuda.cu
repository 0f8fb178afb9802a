// The CUDA device: the shared kernels (kernels.inl) as grid-stride CUDA kernels on one stream per
// RunState, cuBLAS for GEMM (plain FP32 math: results stay within float rounding of the CPU engine).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <limits>
#include <string>

#include "quiver/core/error.hpp"

#define QV_HD __host__ __device__
#include "gpu/kernels.inl"

namespace quiver::gpu {
namespace {

[[noreturn]] void cuda_fail(cudaError_t e, const char* what) {
  throw_error(e == cudaErrorMemoryAllocation ? ErrorCode::ResourceExhausted : ErrorCode::Internal,
              std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) cuda_fail(e, what);
}

template <class F>
__global__ void each_kernel(int64_t n, F f) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

struct CudaExec {
  template <class F>
  static void each(void* q, int64_t n, F f) {
    if (n <= 0) return;
    constexpr int kThreads = 256;
    const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 132 * 32);
    each_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, static_cast<cudaStream_t>(q)>>>(n, f);
    check(cudaGetLastError(), "kernel launch");
  }
};

class CudaStream final : public kern::KernelStream<CudaExec> {
 public:
  explicit CudaStream(int device) : device_(device) {
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    if (cublasCreate(&blas_) != CUBLAS_STATUS_SUCCESS) {
      cudaStreamDestroy(stream_);
      throw_error(ErrorCode::Internal, "cuBLAS: cublasCreate failed");
    }
    cublasSetStream(blas_, stream_);
    // Waiting threads sleep instead of spinning: event threads are the scarce resource (a spinning
    // wait burns a core that another event could use while the GPU works).
    if (cudaEventCreateWithFlags(&done_, cudaEventBlockingSync | cudaEventDisableTiming) != cudaSuccess) {
      cublasDestroy(blas_);
      cudaStreamDestroy(stream_);
      throw_error(ErrorCode::Internal, "CUDA: cudaEventCreate failed");
    }
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, device) == cudaSuccess) name_ = p.name;
  }
  ~CudaStream() override {
    cudaEventDestroy(done_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }
  std::string device_name() const override { return "cuda:" + std::to_string(device_) + " (" + name_ + ")"; }
  void activate() override { check(cudaSetDevice(device_), "cudaSetDevice"); }
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    check(cudaMalloc(&p, std::max<size_t>(bytes, 256)), "cudaMalloc");
    return p;
  }
  void release(void* p) override {
    // The releasing thread may have another device current (a model destroyed elsewhere); errors at
    // process exit (runtime already unloaded) are ignored.
    if (cudaSetDevice(device_) == cudaSuccess) cudaFree(p);
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    sync();  // the long wait (kernels queued before) sleeps here; the copy into pageable memory then is short
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    sync();
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "device copy");
  }
  void sync() override {
    check(cudaEventRecord(done_, stream_), "event record");
    check(cudaEventSynchronize(done_), "stream");
  }
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda, int64_t sA,
            const void* B, int64_t ldb, int64_t sB, float beta, void* C, int64_t ldc, int64_t sC,
            int64_t batch) override {
    if (M == 0 || N == 0 || batch == 0) return;
    constexpr int64_t kMax = std::numeric_limits<int>::max();  // cuBLAS takes int sizes
    if (M > kMax || N > kMax || K > kMax || lda > kMax || ldb > kMax || ldc > kMax || batch > kMax)
      throw_error(ErrorCode::Unsupported, "GEMM of " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                                              std::to_string(K) + " exceeds cuBLAS's 32-bit sizes");
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
    const cublasStatus_t s = cublasSgemmStridedBatched(
        blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
        static_cast<int>(K), &alpha, static_cast<const float*>(B), static_cast<int>(ldb), sB,
        static_cast<const float*>(A), static_cast<int>(lda), sA, &beta, static_cast<float*>(C), static_cast<int>(ldc),
        sC, static_cast<int>(batch));
    if (s != CUBLAS_STATUS_SUCCESS)
      throw_error(ErrorCode::Internal, "cuBLAS sgemm failed (status " + std::to_string(int(s)) + ") for " +
                                           std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K));
  }

 protected:
  void* queue() const override { return stream_; }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cudaEvent_t done_ = nullptr;
  std::string name_;
};

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string("no usable CUDA device: ") + cudaGetErrorString(e);
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device found";
  return n;
}

}  // namespace

}  // namespace quiver::gpu

// The entry points libquiver_onnx looks up after dlopen("libquiver_cuda.so"): CPU-only processes never
// map the CUDA runtime and cuBLAS (~100 MB of RSS).
extern "C" {
__attribute__((visibility("default"))) int quiver_cuda_device_count(char* why, size_t n) {
  std::string w;
  const int c = quiver::gpu::device_count(&w);
  if (why && n) {
    const size_t k = std::min(n - 1, w.size());
    w.copy(why, k);
    why[k] = 0;
  }
  return c;
}
// Owned by the caller. Throws quiver::Error like the rest of Quiver.
__attribute__((visibility("default"))) quiver::gpu::Stream* quiver_cuda_make_stream(int device) {
  std::string why;
  const int n = quiver::gpu::device_count(&why);
  if (n == 0) quiver::throw_error(quiver::ErrorCode::Unavailable, why);
  if (device < 0 || device >= n)
    quiver::throw_error(quiver::ErrorCode::InvalidArgument,
                        "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) + " found)");
  return new quiver::gpu::CudaStream(device);
}
}
