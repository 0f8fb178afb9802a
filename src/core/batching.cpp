#include "quiver/core/batching.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "quiver/core/error.hpp"
#include "quiver/core/shape.hpp"

namespace quiver {

namespace {
int64_t row_elements(const Tensor& t) { return t.rank() == 0 || t.dim(0) == 0 ? 0 : t.numel() / t.dim(0); }

bool same_rows(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.rank() == b.rank() && a.rank() > 0 &&
         std::equal(a.dims().begin() + 1, a.dims().end(), b.dims().begin() + 1);
}

void copy_elements(const Tensor& src, int64_t from, Tensor& dst, int64_t to, int64_t n) {
  if (n <= 0) return;
  if (src.dtype() == DType::String) {
    const std::string* s = src.data<std::string>() + from;
    std::string* d = dst.data<std::string>() + to;
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
    return;
  }
  const size_t esz = dtype_size(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw()) + static_cast<size_t>(to) * esz,
              static_cast<const char*>(src.raw()) + static_cast<size_t>(from) * esz, static_cast<size_t>(n) * esz);
}
}  // namespace

void copy_rows(const Tensor& src, int64_t src_row, Tensor& dst, int64_t dst_row, int64_t rows, std::string_view name) {
  if (!same_rows(src, dst))
    throw Error(ErrorCode::InvalidArgument,
                "rows of " + std::string(dtype_name(src.dtype())) + dims_to_string(src.dims()) + " do not fit " +
                    std::string(dtype_name(dst.dtype())) + dims_to_string(dst.dims()),
                {.tensor = std::string(name)});
  if (rows < 0 || src_row < 0 || dst_row < 0 || src_row > src.dim(0) - rows || dst_row > dst.dim(0) - rows)
    throw Error(ErrorCode::InvalidArgument,
                "rows [" + std::to_string(src_row) + ", +" + std::to_string(rows) + ") to [" + std::to_string(dst_row) +
                    ", +" + std::to_string(rows) + ") are outside " + dims_to_string(src.dims()) + " / " +
                    dims_to_string(dst.dims()),
                {.tensor = std::string(name)});
  const int64_t per = row_elements(src);
  copy_elements(src, src_row * per, dst, dst_row * per, rows * per);
}

void join_rows(std::span<const Tensor* const> parts, Tensor& dst, std::string_view name) {
  if (parts.empty()) throw Error(ErrorCode::InvalidArgument, "nothing to join", {.tensor = std::string(name)});
  const Tensor& t0 = *parts[0];
  if (t0.rank() == 0) throw Error(ErrorCode::InvalidArgument, "cannot batch a scalar input", {.tensor = std::string(name)});
  int64_t total = 0;
  for (const Tensor* p : parts) {
    if (!same_rows(*p, t0))
      throw Error(ErrorCode::InvalidArgument,
                  "batched requests disagree on dtype or non-batch dims: " + dims_to_string(p->dims()) + " vs " +
                      dims_to_string(t0.dims()),
                  {.tensor = std::string(name)});
    total += p->dim(0);
  }
  std::vector<int64_t> dims = t0.dims();
  dims[0] = total;
  dst.ensure(t0.dtype(), dims);
  const int64_t per = row_elements(dst);
  int64_t at = 0;
  for (const Tensor* p : parts) {
    copy_elements(*p, 0, dst, at, p->numel());
    at += p->dim(0) * per;
  }
}

std::vector<NamedTensor> concat_batch(const std::vector<const std::vector<NamedTensor>*>& parts) {
  if (parts.empty()) return {};
  const auto& first = *parts[0];
  std::vector<NamedTensor> out;
  out.reserve(first.size());
  std::vector<const Tensor*> column(parts.size());
  for (size_t k = 0; k < first.size(); ++k) {
    for (size_t i = 0; i < parts.size(); ++i) {
      if (parts[i]->size() != first.size() || (*parts[i])[k].name != first[k].name)
        throw Error(ErrorCode::InvalidArgument, "coalesced requests have different inputs", {.tensor = first[k].name});
      column[i] = &(*parts[i])[k].tensor;
    }
    Tensor merged;
    join_rows(column, merged, first[k].name);
    out.push_back({first[k].name, std::move(merged)});
  }
  return out;
}

std::vector<std::vector<NamedTensor>> split_batch(const std::vector<NamedTensor>& outputs,
                                                  const std::vector<int64_t>& offsets) {
  const size_t n = offsets.empty() ? 0 : offsets.size() - 1;
  std::vector<std::vector<NamedTensor>> parts(n);
  for (auto& o : outputs) {
    const Tensor& t = o.tensor;
    if (t.rank() == 0 || offsets.empty() || t.dim(0) != offsets.back())
      throw Error(ErrorCode::InvalidArgument,
                  "output of a coalesced request has dims " + dims_to_string(t.dims()) + ", expected dim 0 = " +
                      std::to_string(offsets.empty() ? 0 : offsets.back()) + " (the summed batch)",
                  {.tensor = o.name});
    for (size_t i = 0; i < n; ++i) parts[i].push_back({o.name, t.rows(offsets[i], offsets[i + 1] - offsets[i])});
  }
  return parts;
}

std::vector<Tensor> take_rows(const std::vector<Tensor>& tensors, int64_t first, int64_t count) {
  std::vector<Tensor> out;
  out.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.rank() == 0 || first < 0 || count < 0 || first > t.dim(0) - count)
      throw Error(ErrorCode::InvalidArgument,
                  "rows [" + std::to_string(first) + ", +" + std::to_string(count) + ") are outside " +
                      dims_to_string(t.dims()),
                  {.tensor = "#" + std::to_string(i)});
    out.push_back(t.rows(first, count));
  }
  return out;
}

std::vector<Tensor> tile_rows(const std::vector<Tensor>& tensors, int64_t batch) {
  std::vector<Tensor> out;
  out.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    if (t.rank() == 0 || t.dim(0) == batch || t.dim(0) == 0) {
      out.push_back(t);
      continue;
    }
    if (t.dim(0) > batch) {
      out.push_back(t.rows(0, batch));
      continue;
    }
    std::vector<int64_t> dims = t.dims();
    dims[0] = batch;
    Tensor n = Tensor::empty(t.dtype(), dims);
    for (int64_t at = 0; at < batch; at += t.dim(0)) copy_rows(t, 0, n, at, std::min(t.dim(0), batch - at));
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<Tensor> join_calls(const std::vector<std::vector<Tensor>>& parts) {
  if (parts.empty()) return {};
  std::vector<Tensor> out(parts[0].size());
  std::vector<const Tensor*> column(parts.size());
  for (size_t i = 0; i < out.size(); ++i) {
    for (size_t p = 0; p < parts.size(); ++p) {
      if (parts[p].size() != out.size())
        throw Error(ErrorCode::InvalidArgument, "calls to join have " + std::to_string(parts[p].size()) + " and " +
                                                    std::to_string(out.size()) + " tensors");
      column[p] = &parts[p][i];
    }
    join_rows(column, out[i], "#" + std::to_string(i));
  }
  return out;
}

}  // namespace quiver
