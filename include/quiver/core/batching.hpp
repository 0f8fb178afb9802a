// Batch assembly: joining the rows (dim 0) of several requests' tensors into one batch and giving
// each request its rows of the results back; taking, tiling and joining the rows of whole calls. The
// one implementation behind the server's dynamic batcher, the client's coalescer, the flow's batch
// stage and service mode, and the batch paths of `quiver bench` / `quiver validate` and the tests.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "quiver/core/tensor.hpp"

namespace quiver {

// Copies `rows` rows of `src` starting at `src_row` into `dst` starting at `dst_row`. Both have
// the same dtype and row size (BYTES elements are assigned). Throws InvalidArgument naming
// `name` when they differ or a range is outside a tensor.
void copy_rows(const Tensor& src, int64_t src_row, Tensor& dst, int64_t dst_row, int64_t rows,
               std::string_view name = {});

// Joins `parts` (same dtype and non-batch dims) along dim 0 into `dst`, reusing its storage when
// it fits (Tensor::ensure). Throws InvalidArgument naming `name` when the parts disagree.
void join_rows(std::span<const Tensor* const> parts, Tensor& dst, std::string_view name = {});

// Requests' named inputs (same names, dtypes and non-batch dims, in the same order) joined along
// dim 0 into new tensors. Throws InvalidArgument naming the tensor when they do not line up.
std::vector<NamedTensor> concat_batch(const std::vector<const std::vector<NamedTensor>*>& parts);
// Splits a joined request's outputs back: part i gets rows [offsets[i], offsets[i+1]) of every
// output, as views sharing the joined tensors' storage. Throws InvalidArgument when an output's
// dim 0 is not offsets.back().
std::vector<std::vector<NamedTensor>> split_batch(const std::vector<NamedTensor>& outputs,
                                                  const std::vector<int64_t>& offsets);

// ---- Whole calls (every input or output of one call, in order) ----

// Rows [first, first + count) of every tensor, as views sharing their storage. Throws
// InvalidArgument when a tensor is a scalar or has fewer rows.
std::vector<Tensor> take_rows(const std::vector<Tensor>& tensors, int64_t first, int64_t count);
// Every tensor's rows repeated (0, 1, .., n-1, 0, 1, ..) up to `batch` rows, or its first `batch`
// rows when it has more: a reference data set as a bigger or smaller batch. Scalars, empty
// tensors and tensors already of that batch are kept as they are.
std::vector<Tensor> tile_rows(const std::vector<Tensor>& tensors, int64_t batch);
// Several calls' tensors joined along dim 0: tensor i of the result holds parts[0][i], parts[1][i],
// ... in order. Throws InvalidArgument (naming the tensor's index) when the parts disagree.
std::vector<Tensor> join_calls(const std::vector<std::vector<Tensor>>& parts);

}  // namespace quiver
