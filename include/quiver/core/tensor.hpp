// Tensor: dtype + dense row-major dims + data. Either owns 64-byte-aligned storage or views memory
// it does not own (a caller's buffer, a gRPC message, a shared-memory region) without copying.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "quiver/core/dtype.hpp"

namespace quiver {

inline constexpr size_t kTensorAlignment = 64;

// Upper bound on one tensor's allocation by the calling thread while a TensorByteLimit lives (default:
// none beyond 2^40 elements). A fuzzer or a request handler scopes one around untrusted work so that a
// hostile model or request gets an error (ResourceExhausted) instead of the OOM killer. Scoped and per
// thread: no process-wide setting that unrelated callers would see change. The engine allocates on
// the calling thread.
class TensorByteLimit {
 public:
  explicit TensorByteLimit(size_t bytes);  // 0: no limit within this scope
  ~TensorByteLimit();                      // the enclosing limit again
  TensorByteLimit(const TensorByteLimit&) = delete;
  TensorByteLimit& operator=(const TensorByteLimit&) = delete;

 private:
  size_t enclosing_;
};
// The calling thread's limit now (SIZE_MAX: none).
size_t tensor_byte_limit();

// Owned, aligned storage. String tensors hold constructed std::string objects.
class Storage {
 public:
  Storage(DType dtype, size_t elements);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t capacity_bytes() const { return bytes_; }
  DType dtype() const { return dtype_; }
  size_t elements() const { return elements_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  size_t elements_ = 0;
  DType dtype_;
};

class Tensor {
 public:
  Tensor() = default;

  // Owning tensor, contents uninitialised (strings: empty).
  static Tensor empty(DType dtype, std::span<const int64_t> dims);
  static Tensor empty(DType dtype, std::initializer_list<int64_t> dims) {
    return empty(dtype, std::span<const int64_t>(dims.begin(), dims.size()));
  }
  // Owning tensor filled with zeros (false, empty strings).
  static Tensor zeros(DType dtype, std::span<const int64_t> dims);
  static Tensor zeros(DType dtype, std::initializer_list<int64_t> dims) {
    return zeros(dtype, std::span<const int64_t>(dims.begin(), dims.size()));
  }
  // Zero-copy view of memory owned elsewhere. `keepalive` (optional) is held for the view's lifetime.
  static Tensor view(DType dtype, std::span<const int64_t> dims, void* data,
                     std::shared_ptr<const void> keepalive = {});
  static Tensor view(DType dtype, std::span<const int64_t> dims, const void* data,
                     std::shared_ptr<const void> keepalive = {}) {
    return view(dtype, dims, const_cast<void*>(data), std::move(keepalive));
  }
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, std::span<const int64_t> dims);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, std::initializer_list<int64_t> dims) {
    return from_vector(values, std::span<const int64_t>(dims.begin(), dims.size()));
  }
  template <class T>
  static Tensor scalar(T v) {
    return from_vector(std::vector<T>{v}, std::span<const int64_t>());
  }

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  size_t rank() const { return dims_.size(); }
  int64_t dim(size_t i) const { return dims_[i]; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  bool defined() const { return dtype_ != DType::Undefined; }
  bool is_view() const { return storage_ == nullptr; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T> T* data() { return static_cast<T*>(data_); }
  template <class T> const T* data() const { return static_cast<const T*>(data_); }
  template <class T> std::span<T> span() { return {data<T>(), static_cast<size_t>(numel_)}; }
  template <class T> std::span<const T> span() const { return {data<T>(), static_cast<size_t>(numel_)}; }

  // Deep copy into owned storage.
  Tensor clone() const;
  // Same data, other dims (numel must match). Shares storage / keepalive.
  Tensor reshaped(std::span<const int64_t> dims) const;
  // Rows [first, first + count) of dim 0 as a view that keeps this tensor's storage alive.
  // Throws InvalidArgument for a scalar or rows out of range.
  Tensor rows(int64_t first, int64_t count) const;
  // Make this an owned tensor of dtype/dims, reusing the current storage when it is owned, not
  // shared with another Tensor and large enough. Contents are unspecified afterwards. This is what
  // lets per-call state reach zero allocations in steady state.
  void ensure(DType dtype, std::span<const int64_t> dims);
  // Change dims in place (numel must match); no data movement.
  void set_dims(std::span<const int64_t> dims);
  size_t capacity_bytes() const;
  // Copy contents from `src` (same dtype and numel; dims taken from src).
  void copy_from(const Tensor& src);

 private:
  DType dtype_ = DType::Undefined;
  std::vector<int64_t> dims_;
  int64_t numel_ = 0;
  void* data_ = nullptr;
  std::shared_ptr<Storage> storage_;        // owned storage (null for views)
  std::shared_ptr<const void> keepalive_;   // what a view keeps alive
};

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, std::span<const int64_t> dims) {
  Tensor t = empty(dtype_v<T>, dims);
  T* p = t.data<T>();
  for (size_t i = 0; i < values.size() && i < static_cast<size_t>(t.numel()); ++i) p[i] = values[i];
  return t;
}

// A tensor with the name it travels under (request/response, files).
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

}  // namespace quiver
