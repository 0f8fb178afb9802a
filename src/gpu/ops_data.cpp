// Device ops, data movement: Transpose, Concat, Slice, Split, Expand, Tile, Gather. All of them are one
// strided copy (or a gather) per output; shape arguments are read on the host.
#include <algorithm>

#include "gpu/executor.hpp"

namespace quiver::gpu {
namespace {

size_t elem_size(const OpCtx& c, DType t) {
  if (t == DType::String || t == DType::Undefined) c.cpu("strings stay on the host");
  return dtype_size(t);
}

// Copy layout: stride[0] = destination, stride[1] = source.
Layout copy_layout(const OpCtx& c, const std::vector<int64_t>& dims, const std::vector<int64_t>& dst,
                   const std::vector<int64_t>& src, int64_t dst_off = 0, int64_t src_off = 0) {
  if (dims.size() > static_cast<size_t>(kMaxRank)) c.cpu("rank above the device kernels' limit");
  Layout l;
  l.rank = static_cast<int>(dims.size());
  for (size_t k = 0; k < dims.size(); ++k) {
    l.dims[k] = dims[k];
    l.stride[0][k] = dst[k];
    l.stride[1][k] = src[k];
  }
  l.offset[0] = dst_off;
  l.offset[1] = src_off;
  return l;
}

void transpose_op(OpCtx& c) {
  const Val& x = c.in(0);
  const size_t es = elem_size(c, x.dtype);
  const size_t r = x.dims.size();
  std::vector<int64_t> perm = c.attrs.get_ints("perm");
  if (perm.empty())
    for (size_t k = 0; k < r; ++k) perm.push_back(static_cast<int64_t>(r - 1 - k));
  if (perm.size() != r) c.fail("perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(r));
  const auto xs = contiguous_strides(x.dims);
  std::vector<int64_t> out(r), src(r);
  std::vector<bool> seen(r, false);
  for (size_t k = 0; k < r; ++k) {
    const int64_t p = perm[k] < 0 ? perm[k] + static_cast<int64_t>(r) : perm[k];
    if (p < 0 || p >= static_cast<int64_t>(r) || seen[p]) c.fail("perm is not a permutation of 0.." + std::to_string(r - 1));
    seen[p] = true;
    out[k] = x.dims[p];
    src[k] = xs[p];
  }
  const void* xp = c.dev(0);
  void* y = c.out(0, x.dtype, out);
  c.s.copy_strided(y, xp, es, copy_layout(c, out, contiguous_strides(out), src), numel(out));
}

void concat_op(OpCtx& c) {
  const Val& first = c.in(0);
  const size_t es = elem_size(c, first.dtype);
  const int64_t r = static_cast<int64_t>(first.dims.size());
  const int64_t axis = norm_axis(c, c.attrs.req_int("axis"), r);
  std::vector<int64_t> out = first.dims;
  out[axis] = 0;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const Val& v = c.in(i);
    if (v.dtype != first.dtype) c.fail("inputs have different dtypes");
    if (static_cast<int64_t>(v.dims.size()) != r) c.fail("inputs have different ranks");
    for (int64_t k = 0; k < r; ++k)
      if (k != axis && v.dims[k] != first.dims[k])
        c.fail("input " + std::to_string(i) + " has shape " + dims_to_string(v.dims) + ", expected " +
               dims_to_string(first.dims) + " outside axis " + std::to_string(axis));
    out[axis] += v.dims[axis];
  }
  std::vector<const void*> ptrs;
  for (size_t i = 0; i < c.num_inputs(); ++i) ptrs.push_back(c.in(i).numel() ? c.dev(i) : nullptr);
  void* y = c.out(0, first.dtype, out);
  const auto os = contiguous_strides(out);
  int64_t at = 0;
  for (size_t i = 0; i < ptrs.size(); ++i) {
    const Val& v = c.in(i);
    if (v.numel())
      c.s.copy_strided(y, ptrs[i], es, copy_layout(c, v.dims, os, contiguous_strides(v.dims), at * os[axis]), v.numel());
    at += v.dims[axis];
  }
}

void slice_op(OpCtx& c) {
  const Val& x = c.in(0);
  const size_t es = elem_size(c, x.dtype);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (c.opset() < 10) {
    starts = c.attrs.req_ints("starts");
    ends = c.attrs.req_ints("ends");
    axes = c.attrs.get_ints("axes");
  } else {
    starts = c.ints(1);
    ends = c.ints(2);
    if (c.has(3)) axes = c.ints(3);
    if (c.has(4)) steps = c.ints(4);
  }
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail("starts, ends, axes and steps have different lengths");
  const auto xs = contiguous_strides(x.dims);
  std::vector<int64_t> out = x.dims, src = xs;
  int64_t off = 0;
  std::vector<bool> seen(r, false);
  for (size_t k = 0; k < starts.size(); ++k) {
    const int64_t a = norm_axis(c, axes[k], r);
    if (seen[a]) c.fail("axis " + std::to_string(axes[k]) + " appears twice");
    seen[a] = true;
    const int64_t d = x.dims[a], st = steps[k];
    if (st == 0) c.fail("slice step is 0");
    int64_t b = starts[k], e = ends[k];
    if (b < 0) b += d;
    if (e < 0) e += d;
    int64_t len;
    if (st > 0) {
      b = std::clamp<int64_t>(b, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
      len = e > b ? (e - b + st - 1) / st : 0;
    } else {
      b = std::clamp<int64_t>(b, 0, d - 1);
      e = std::clamp<int64_t>(e, -1, d - 1);
      len = b > e ? (b - e + (-st) - 1) / (-st) : 0;
    }
    out[a] = len;
    if (len > 0) off += b * xs[a];
    src[a] = xs[a] * st;
  }
  const void* xp = c.dev(0);
  void* y = c.out(0, x.dtype, out);
  if (numel(out) > 0) c.s.copy_strided(y, xp, es, copy_layout(c, out, contiguous_strides(out), src, 0, off), numel(out));
}

void split_op(OpCtx& c) {
  const Val& x = c.in(0);
  const size_t es = elem_size(c, x.dtype);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const int64_t axis = norm_axis(c, c.attrs.get_int("axis", 0), r);
  const int64_t d = x.dims[axis];
  const int64_t n = static_cast<int64_t>(c.num_outputs());
  std::vector<int64_t> sizes;
  if (c.opset() >= 13 && c.has(1)) sizes = c.ints(1);
  else if (c.opset() < 13) sizes = c.attrs.get_ints("split");
  if (sizes.empty()) {
    const int64_t parts = c.attrs.get_int("num_outputs", n);
    const int64_t each = (d + parts - 1) / std::max<int64_t>(parts, 1);
    if (c.opset() < 18 && d % std::max<int64_t>(parts, 1) != 0)
      c.fail("axis of size " + std::to_string(d) + " cannot be split evenly into " + std::to_string(parts));
    for (int64_t i = 0, left = d; i < parts; ++i, left -= each) sizes.push_back(std::min(each, std::max<int64_t>(left, 0)));
  }
  int64_t total = 0;
  for (auto s : sizes) total += s;
  if (static_cast<int64_t>(sizes.size()) != n || total != d)
    c.fail("split sizes do not add up to the axis (" + std::to_string(d) + ") over " + std::to_string(n) + " outputs");
  const void* xp = c.dev(0);
  const auto xs = contiguous_strides(x.dims);
  int64_t at = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> out = x.dims;
    out[axis] = sizes[i];
    void* y = c.out(static_cast<size_t>(i), x.dtype, out);
    if (numel(out) > 0)
      c.s.copy_strided(y, xp, es, copy_layout(c, out, contiguous_strides(out), xs, 0, at * xs[axis]), numel(out));
    at += sizes[i];
  }
}

void expand_op(OpCtx& c) {
  const Val& x = c.in(0);
  const size_t es = elem_size(c, x.dtype);
  const auto shape = c.ints(1);
  const auto out = broadcast_dims(c, {x.dims, shape});
  const Layout l = broadcast_layout(c, out, {out, x.dims});  // stride[0]: contiguous destination
  const void* xp = c.dev(0);
  void* y = c.out(0, x.dtype, out);
  c.s.copy_strided(y, xp, es, l, numel(out));
}

void tile_op(OpCtx& c) {
  const Val& x = c.in(0);
  const size_t es = elem_size(c, x.dtype);
  const auto reps = c.ints(1);
  if (reps.size() != x.dims.size())
    c.fail("repeats has " + std::to_string(reps.size()) + " entries for rank " + std::to_string(x.dims.size()));
  std::vector<int64_t> out(x.dims.size());
  for (size_t k = 0; k < out.size(); ++k) {
    if (reps[k] < 0) c.fail("negative repeat");
    out[k] = x.dims[k] * reps[k];
  }
  Layout l = copy_layout(c, out, contiguous_strides(out), contiguous_strides(x.dims));
  for (size_t k = 0; k < out.size(); ++k) l.mod[k] = x.dims[k];
  const void* xp = c.dev(0);
  void* y = c.out(0, x.dtype, out);
  if (numel(out) > 0) c.s.copy_strided(y, xp, es, l, numel(out));
}

void gather_op(OpCtx& c) {
  const Val& data = c.in(0);
  const Val& idx = c.in(1);
  const size_t es = elem_size(c, data.dtype);
  if (idx.dtype != DType::I64 && idx.dtype != DType::I32) c.cpu("index dtype");
  const int64_t r = static_cast<int64_t>(data.dims.size());
  if (r == 0) c.fail("Gather needs data of rank >= 1");
  const int64_t axis = norm_axis(c, c.attrs.get_int("axis", 0), r);
  std::vector<int64_t> out(data.dims.begin(), data.dims.begin() + axis);
  out.insert(out.end(), idx.dims.begin(), idx.dims.end());
  out.insert(out.end(), data.dims.begin() + axis + 1, data.dims.end());
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= data.dims[k];
  for (int64_t k = axis + 1; k < r; ++k) inner *= data.dims[k];
  const void* dp = c.dev(0);
  const void* ip = c.dev(1);
  void* y = c.out(0, data.dtype, out);
  c.s.gather(dp, ip, idx.dtype == DType::I32, y, es, outer, data.dims[axis], inner, idx.numel(), c.err, c.err_code);
}

}  // namespace

void register_data_ops() {
  register_device_op("Transpose", transpose_op);
  register_device_op("Concat", concat_op);
  register_device_op("Slice", slice_op);
  register_device_op("Split", split_op);
  register_device_op("Expand", expand_op);
  register_device_op("Tile", tile_op);
  register_device_op("Gather", gather_op);
}

}  // namespace quiver::gpu
