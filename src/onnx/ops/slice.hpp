// The Slice rule for one axis, shared by the operator, the compiler's shape values and the GPU
// executor's Slice: negative start/end count from the end, then both are clamped per the spec
// (differently for negative steps).
#pragma once
#include <cstdint>

namespace quiver::onnx {

struct SliceAxis {
  int64_t start = 0;  // first index read (meaningless when count is 0)
  int64_t count = 0;  // elements taken, every `step`-th from start
};
// `step` must not be 0 (callers report that with their own context).
SliceAxis slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step);

}  // namespace quiver::onnx
