#include "quiver/core/tensor.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "quiver/core/error.hpp"
#include "quiver/core/shape.hpp"

namespace quiver {

namespace {
thread_local size_t t_byte_limit = SIZE_MAX;  // see TensorByteLimit
}
TensorByteLimit::TensorByteLimit(size_t bytes) : enclosing_(t_byte_limit) { t_byte_limit = bytes ? bytes : SIZE_MAX; }
TensorByteLimit::~TensorByteLimit() { t_byte_limit = enclosing_; }
size_t tensor_byte_limit() { return t_byte_limit; }

Storage::Storage(DType dtype, size_t elements) : elements_(elements), dtype_(dtype) {
  size_t bytes = elements * dtype_size(dtype);
  if (bytes > t_byte_limit)
    throw_error(ErrorCode::ResourceExhausted, "tensor of " + std::to_string(bytes) + " bytes exceeds the limit of " +
                                                  std::to_string(t_byte_limit) + " bytes");
  bytes_ = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  if (bytes_ == 0) bytes_ = kTensorAlignment;  // never hand out null: views of empty tensors stay valid
  data_ = std::aligned_alloc(kTensorAlignment, bytes_);
  if (!data_)
    throw_error(ErrorCode::ResourceExhausted, "cannot allocate " + std::to_string(bytes_) + " bytes for a tensor");
  if (dtype_ == DType::String) {
    auto* s = static_cast<std::string*>(data_);
    for (size_t i = 0; i < elements_; ++i) new (s + i) std::string();
  }
}

Storage::~Storage() {
  if (dtype_ == DType::String) {
    auto* s = static_cast<std::string*>(data_);
    for (size_t i = 0; i < elements_; ++i) s[i].~basic_string();
  }
  std::free(data_);
}

static int64_t checked_numel(std::span<const int64_t> dims) {
  int64_t n = 1;
  for (auto d : dims) {
    if (d < 0) throw_error(ErrorCode::InvalidArgument, "negative dimension in " + dims_to_string(dims));
    if (d != 0 && n > (int64_t{1} << 40) / d)
      throw_error(ErrorCode::ResourceExhausted, "tensor too large: " + dims_to_string(dims));
    n *= d;
  }
  return n;
}

Tensor Tensor::empty(DType dtype, std::span<const int64_t> dims) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_.assign(dims.begin(), dims.end());
  t.numel_ = checked_numel(dims);
  t.storage_ = std::make_shared<Storage>(dtype, static_cast<size_t>(t.numel_));
  t.data_ = t.storage_->data();
  return t;
}

Tensor Tensor::zeros(DType dtype, std::span<const int64_t> dims) {
  Tensor t = empty(dtype, dims);
  if (dtype != DType::String) std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::view(DType dtype, std::span<const int64_t> dims, void* data, std::shared_ptr<const void> keepalive) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_.assign(dims.begin(), dims.end());
  t.numel_ = checked_numel(dims);
  t.data_ = data;
  t.keepalive_ = std::move(keepalive);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(dtype_, dims_);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.dtype_ != dtype_ || src.numel_ != numel_)
    throw_error(ErrorCode::Internal, "copy_from: dtype/size mismatch");
  dims_ = src.dims_;
  if (dtype_ == DType::String) {
    auto* d = static_cast<std::string*>(data_);
    const auto* s = static_cast<const std::string*>(src.data_);
    for (int64_t i = 0; i < numel_; ++i) d[i] = s[i];
  } else if (numel_ > 0 && data_ != src.data_) {
    std::memcpy(data_, src.data_, nbytes());
  }
}

Tensor Tensor::reshaped(std::span<const int64_t> dims) const {
  Tensor t = *this;
  t.set_dims(dims);
  return t;
}

Tensor Tensor::rows(int64_t first, int64_t count) const {
  if (dims_.empty() || first < 0 || count < 0 || first > dims_[0] || count > dims_[0] - first)
    throw_error(ErrorCode::InvalidArgument, "rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
                                                ") of a tensor of dims " + dims_to_string(dims_));
  Tensor t;
  t.dtype_ = dtype_;
  t.dims_ = dims_;
  t.dims_[0] = count;
  const int64_t per_row = dims_[0] ? numel_ / dims_[0] : 0;
  t.numel_ = per_row * count;
  t.data_ = static_cast<char*>(data_) + static_cast<size_t>(first * per_row) * dtype_size(dtype_);
  if (storage_) t.keepalive_ = storage_;
  else t.keepalive_ = keepalive_;
  return t;
}

void Tensor::set_dims(std::span<const int64_t> dims) {
  int64_t n = checked_numel(dims);
  if (n != numel_)
    throw_error(ErrorCode::InvalidArgument,
                "cannot reshape " + dims_to_string(dims_) + " to " + dims_to_string(dims));
  dims_.assign(dims.begin(), dims.end());
}

size_t Tensor::capacity_bytes() const { return storage_ ? storage_->capacity_bytes() : nbytes(); }

void Tensor::ensure(DType dtype, std::span<const int64_t> dims) {
  const int64_t n = checked_numel(dims);
  const size_t need = static_cast<size_t>(n) * dtype_size(dtype);
  const bool reusable = storage_ && storage_.use_count() == 1 && storage_->dtype() != DType::String &&
                        dtype != DType::String && storage_->capacity_bytes() >= need;
  if (!reusable) {
    // Grow geometrically so a slowly growing dynamic dim does not reallocate every call.
    size_t elems = static_cast<size_t>(n);
    if (storage_ && storage_.use_count() == 1 && dtype != DType::String && dtype_size(dtype) > 0)
      elems = std::max(elems, storage_->capacity_bytes() * 3 / 2 / dtype_size(dtype));
    storage_ = std::make_shared<Storage>(dtype, elems);
  }
  keepalive_.reset();
  dtype_ = dtype;
  dims_.assign(dims.begin(), dims.end());
  numel_ = n;
  data_ = storage_->data();
}

}  // namespace quiver
