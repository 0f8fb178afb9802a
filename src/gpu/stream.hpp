// Internal: the device layer of the GPU executor. A Stream is one ordered queue of device work
// (memory moves and kernels) owned by one RunState. Two implementations share one kernel source
// (kernels.inl): CUDA (kernels_cuda.cu, cuBLAS for GEMM; built when the CUDA toolkit is found) and an
// emulated device whose "device memory" is host memory (kernels_host.cpp), so that the executor's
// placement, transfers and shape logic are tested on machines without a GPU (CI).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace quiver::gpu {

inline constexpr int kMaxRank = 8;

// An n-d iteration space over a row-major contiguous output, with the element strides of up to three
// operands (0 = broadcast) and their base offsets. copy_strided also uses `mod` (Tile: the source
// index of dim d is taken modulo mod[d]; 0 = not wrapped).
struct Layout {
  using index = int64_t;
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t stride[3][kMaxRank] = {};
  int64_t mod[kMaxRank] = {};
  int64_t offset[3] = {};
};

enum class DT : int { F32, I64, I32, U8 };  // U8 also carries bool

// Geometry of a convolution for im2col: x [N, C, in...] -> col [N, C * prod(k), prod(out)].
struct ConvGeom {
  int nd = 0;  // spatial dims, 1..3
  int64_t N = 0, C = 0;
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dil[3] = {1, 1, 1};  // pad: at the start
};

enum class UnaryOp : int {
  Identity, Relu, LeakyRelu, Sigmoid, Tanh, Clip, Exp, Log, Sqrt, Neg, Abs, Reciprocal, Erf, Floor, Ceil,
  Sin, Cos, Elu, HardSigmoid, Softplus, Not, Sign, Atan
};
enum class BinaryOp : int {
  Add, Sub, Mul, Div, Pow, Max, Min, Equal, Less, LessOrEqual, Greater, GreaterOrEqual, And, Or, Xor
};
// Comparisons produce bool (U8) whatever their operands' dtype.
inline bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Equal || op == BinaryOp::Less || op == BinaryOp::LessOrEqual || op == BinaryOp::Greater ||
         op == BinaryOp::GreaterOrEqual;
}
enum class ReduceOp : int { Sum, Mean, Max, Min, Prod, SumSquare, L1, L2 };

class Stream {
 public:
  virtual ~Stream() = default;
  virtual std::string device_name() const = 0;
  // Makes this stream's device current on the calling thread (CUDA keeps that per thread).
  virtual void activate() {}
  // Memory (device side). alloc throws quiver::Error(ResourceExhausted) when the device is full.
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;
  // Returns once the bytes are on the host (waits for the work queued before it).
  virtual void download(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // Waits for everything queued; throws quiver::Error(Internal) naming the device error.
  virtual void sync() = 0;

  // Kernels. n = number of output elements. Element types: see each.
  virtual void fill(void* dst, size_t elsize, uint64_t pattern, int64_t n) = 0;
  virtual void copy_strided(void* dst, const void* src, size_t elsize, const Layout& l, int64_t n) = 0;
  // F32 only; alpha/beta are the op's parameters (LeakyRelu/Elu alpha, Clip min/max, HardSigmoid).
  virtual void unary(UnaryOp op, const void* x, void* y, int64_t n, float alpha, float beta) = 0;
  // a and b have dtype dt; y has dt, or U8 for comparisons. l.stride[0]/[1] index a/b.
  virtual void binary(BinaryOp op, DT dt, const void* a, const void* b, void* y, const Layout& l, int64_t n) = 0;
  // out = cond ? x : y; l.stride[0..2] index cond, x, y.
  virtual void where(const void* cond, const void* x, const void* y, void* out, size_t elsize, const Layout& l,
                     int64_t n) = 0;
  virtual void cast(DT from, DT to, const void* x, void* y, int64_t n) = 0;
  // F32. keep: output dims with the input strides of the kept axes; red: reduced dims with their strides.
  virtual void reduce(ReduceOp op, const void* x, void* y, const Layout& keep, const Layout& red, int64_t out_n,
                      int64_t red_n) = 0;
  // F32, rows of `len` elements `inner` apart.
  virtual void softmax(const void* x, void* y, int64_t outer, int64_t len, int64_t inner, bool log) = 0;
  // F32 values, I64 indices; k best of each row, sorted, ties to the lower index.
  virtual void topk(const void* x, void* vals, void* idx, int64_t outer, int64_t len, int64_t inner, int64_t k,
                    bool largest) = 0;
  // out[o, j, i] = data[o, idx[j], i]; idx I64 or I32 (idx32), negative wraps; out of range writes 0
  // and stores `code` in *err (the executor reports the node).
  virtual void gather(const void* data, const void* idx, bool idx32, void* out, size_t elsize, int64_t outer,
                      int64_t axis_len, int64_t inner, int64_t nidx, int32_t* err, int32_t code) = 0;
  // F32, x viewed as [outer, C, inner]: y = act(x * scale[c] + shift[c]); scale/shift may be null.
  virtual void channel_op(const void* x, void* y, const void* scale, const void* shift, int64_t outer, int64_t C,
                          int64_t inner, UnaryOp act, float alpha, float beta) = 0;
  // F32: unfold x into columns (zeros where the window leaves the padded input).
  virtual void im2col(const void* x, void* col, const ConvGeom& g) = 0;
  // F32 LSTM step for one direction: gates g [B, 4H] (i, o, f, c, input and recurrent products
  // summed) plus bias [8H] (Wb + Rb, may be null) and peepholes p [3H] (i, o, f; may be null);
  // c [B, H] is updated in place, h [B, H] receives the new hidden state.
  virtual void lstm_gates(const void* g, const void* bias, const void* p, void* c, void* h, int64_t B, int64_t H) = 0;
  // F32 GRU step pieces, g [B, 3H] holding the z, r, h pre-activations (input and recurrent parts):
  // gru_zr activates z and r in place (+ Wb + Rb, f with alpha/beta); gru_rh writes r * h_prev;
  // gru_h writes h = (1 - z) tanh(pre_h) + z h_prev, where pre_h = g_h + Wb_h + Rb_h, or with
  // `rec` (linear_before_reset: h_prev R_h^T) pre_h = g_h + Wb_h + r (rec + Rb_h).
  virtual void gru_zr(void* g, const void* bias, int64_t B, int64_t H, UnaryOp f, float alpha, float beta) = 0;
  virtual void gru_rh(const void* g, const void* h_prev, void* rh, int64_t B, int64_t H) = 0;
  virtual void gru_h(const void* g, const void* bias, const void* rec, const void* h_prev, void* h, int64_t B,
                     int64_t H) = 0;
  // Row-major F32 C = alpha op(A) op(B) + beta C, `batch` times with element strides sA/sB/sC.
  virtual void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
                    int64_t sA, const void* B, int64_t ldb, int64_t sB, float beta, void* C, int64_t ldc, int64_t sC,
                    int64_t batch) = 0;
};

// Host memory posing as a device: every kernel runs as a plain loop.
std::unique_ptr<Stream> make_emulated_stream();

// CUDA: true when this build has the CUDA kernels.
bool cuda_compiled();
// Number of usable CUDA devices (0 without a driver or a device); `why` gets the reason when 0.
int cuda_device_count(std::string* why = nullptr);
// dlopen of one of Quiver's CUDA modules (next to libquiver_onnx first, then the loader's path);
// handle null and `error` set (no CUDA in this build, or not loadable) when it fails.
struct CudaModule {
  void* handle = nullptr;
  std::string error;
};
CudaModule open_cuda_module(const char* file);
// Stream on CUDA device `device`. Throws quiver::Error(Unavailable) without CUDA.
std::unique_ptr<Stream> make_cuda_stream(int device);

}  // namespace quiver::gpu
