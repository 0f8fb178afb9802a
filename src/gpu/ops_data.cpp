// Device ops, data movement: Transpose, Concat, Slice, Split, Expand, Tile, Gather. All of them are one
// strided copy (or a gather) per output, of any rank. Attributes and constant shape arguments are read once, at
// load; shape arguments the graph computes are read on the host per call.
#include <algorithm>

#include "gpu/executor.hpp"
#include "onnx/ops/slice.hpp"

namespace quiver::gpu {
namespace {

bool movable(DType t) { return t != DType::String && t != DType::Undefined; }

// Copy space: operand 0 = destination, operand 1 = source.
Space copy_space(const std::vector<int64_t>& dims, const std::vector<int64_t>& dst, const std::vector<int64_t>& src,
                 int64_t dst_off = 0, int64_t src_off = 0) {
  Space s;
  s.dims = dims;
  s.stride[0] = dst;
  s.stride[1] = src;
  s.offset[0] = dst_off;
  s.offset[1] = src_off;
  return s;
}

// One strided copy of `s` (any rank) from x to y.
void copy(OpCtx& c, void* y, const void* x, size_t es, const Space& s) {
  launch(s, [&](const Layout& l, int64_t n, int64_t) { c.s.copy_strided(y, x, es, l, n); });
}

std::unique_ptr<const DeviceOp> build_transpose(DeviceBuild& b) {
  if (!movable(b.dtype(0))) return b.decline("strings stay on the host");
  const std::vector<int64_t> perm_attr = b.attrs().get_ints("perm");  // empty: reverse the dims
  return device_op([perm_attr](OpCtx& c) {
    const Val& x = c.in(0);
    const size_t r = x.dims.size();
    std::vector<int64_t> perm = perm_attr;
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
    copy(c, y, xp, dtype_size(x.dtype), copy_space(out, contiguous_strides(out), src));
  });
}

std::unique_ptr<const DeviceOp> build_concat(DeviceBuild& b) {
  if (!movable(b.dtype(0))) return b.decline("strings stay on the host");
  const int64_t axis_attr = b.attrs().get_int("axis", 0);
  return device_op([axis_attr](OpCtx& c) {
    const Val& first = c.in(0);
    const size_t es = dtype_size(first.dtype);
    const int64_t r = static_cast<int64_t>(first.dims.size());
    const int64_t axis = norm_axis(c, axis_attr, r);
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
      if (v.numel()) copy(c, y, ptrs[i], es, copy_space(v.dims, os, contiguous_strides(v.dims), at * os[axis]));
      at += v.dims[axis];
    }
  });
}

std::unique_ptr<const DeviceOp> build_slice(DeviceBuild& b) {
  if (!movable(b.dtype(0))) return b.decline("strings stay on the host");
  // starts, ends, axes, steps: attributes before opset 10, inputs 1-4 after (pre-read when constant).
  std::optional<std::vector<int64_t>> arg[4];
  bool present[4] = {true, true, false, false};
  if (b.opset() < 10) {
    arg[0] = b.attrs().get_ints("starts");
    arg[1] = b.attrs().get_ints("ends");
    arg[2] = b.attrs().get_ints("axes");
    present[2] = !arg[2]->empty();
  } else {
    for (size_t k = 0; k < 4; ++k) {
      present[k] = b.has(k + 1);
      if (present[k]) arg[k] = b.ints_or_host(k + 1);
    }
  }
  return device_op([arg0 = arg[0], arg1 = arg[1], arg2 = arg[2], arg3 = arg[3],
                    p2 = present[2], p3 = present[3]](OpCtx& c) {
    const Val& x = c.in(0);
    const int64_t r = static_cast<int64_t>(x.dims.size());
    auto get = [&](const std::optional<std::vector<int64_t>>& pre, size_t input) { return pre ? *pre : c.ints(input); };
    const std::vector<int64_t> starts = get(arg0, 1), ends = get(arg1, 2);
    std::vector<int64_t> axes = p2 ? get(arg2, 3) : std::vector<int64_t>{};
    std::vector<int64_t> steps = p3 ? get(arg3, 4) : std::vector<int64_t>{};
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
      const onnx::SliceAxis sa = onnx::slice_axis(d, starts[k], ends[k], st);
      out[a] = sa.count;
      if (sa.count > 0) off += sa.start * xs[a];
      src[a] = xs[a] * st;
    }
    const void* xp = c.dev(0);
    void* y = c.out(0, x.dtype, out);
    if (numel(out) > 0) copy(c, y, xp, dtype_size(x.dtype), copy_space(out, contiguous_strides(out), src, 0, off));
  });
}

std::unique_ptr<const DeviceOp> build_split(DeviceBuild& b) {
  if (!movable(b.dtype(0))) return b.decline("strings stay on the host");
  const int64_t axis_attr = b.attrs().get_int("axis", 0);
  const int opset = b.opset();
  const int64_t parts_attr = b.attrs().get_int("num_outputs", static_cast<int64_t>(b.num_outputs()));
  std::optional<std::vector<int64_t>> sizes_pre;  // empty: even parts
  bool sizes_input = false;
  if (opset >= 13 && b.has(1)) {
    sizes_pre = b.ints_or_host(1);
    sizes_input = !sizes_pre;
  } else if (opset < 13) {
    sizes_pre = b.attrs().get_ints("split");
  }
  return device_op([axis_attr, opset, parts_attr, sizes_pre, sizes_input](OpCtx& c) {
    const Val& x = c.in(0);
    const int64_t r = static_cast<int64_t>(x.dims.size());
    const int64_t axis = norm_axis(c, axis_attr, r);
    const int64_t d = x.dims[axis];
    const int64_t n = static_cast<int64_t>(c.num_outputs());
    std::vector<int64_t> sizes = sizes_input ? c.ints(1) : sizes_pre.value_or(std::vector<int64_t>{});
    if (sizes.empty()) {
      const int64_t parts = parts_attr;
      const int64_t each = (d + parts - 1) / std::max<int64_t>(parts, 1);
      if (opset < 18 && d % std::max<int64_t>(parts, 1) != 0)
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
      if (numel(out) > 0) copy(c, y, xp, dtype_size(x.dtype), copy_space(out, contiguous_strides(out), xs, 0, at * xs[axis]));
      at += sizes[i];
    }
  });
}

std::unique_ptr<const DeviceOp> build_expand(DeviceBuild& b) {
  if (!movable(b.dtype(0))) return b.decline("strings stay on the host");
  auto shape_pre = b.ints_or_host(1);
  return device_op([shape_pre](OpCtx& c) {
    const Val& x = c.in(0);
    const auto shape = shape_pre ? *shape_pre : c.ints(1);
    const auto out = broadcast_dims(c, {x.dims, shape});
    const void* xp = c.dev(0);
    void* y = c.out(0, x.dtype, out);
    copy(c, y, xp, dtype_size(x.dtype), broadcast_space(c, out, {out, x.dims}));  // operand 0: the destination
  });
}

std::unique_ptr<const DeviceOp> build_tile(DeviceBuild& b) {
  if (!movable(b.dtype(0))) return b.decline("strings stay on the host");
  auto reps_pre = b.ints_or_host(1);
  return device_op([reps_pre](OpCtx& c) {
    const Val& x = c.in(0);
    const auto reps = reps_pre ? *reps_pre : c.ints(1);
    if (reps.size() != x.dims.size())
      c.fail("repeats has " + std::to_string(reps.size()) + " entries for rank " + std::to_string(x.dims.size()));
    std::vector<int64_t> out(x.dims.size());
    for (size_t k = 0; k < out.size(); ++k) {
      if (reps[k] < 0) c.fail("negative repeat");
      out[k] = x.dims[k] * reps[k];
    }
    Space sp = copy_space(out, contiguous_strides(out), contiguous_strides(x.dims));
    sp.mod = x.dims;  // the source index wraps
    const void* xp = c.dev(0);
    void* y = c.out(0, x.dtype, out);
    if (numel(out) > 0) copy(c, y, xp, dtype_size(x.dtype), sp);
  });
}

std::unique_ptr<const DeviceOp> build_gather(DeviceBuild& b) {
  if (!movable(b.dtype(0))) return b.decline("strings stay on the host");
  if (b.dtype(1) != DType::I64 && b.dtype(1) != DType::I32) return b.decline("index dtype");
  const int64_t axis_attr = b.attrs().get_int("axis", 0);
  return device_op([axis_attr](OpCtx& c) {
    const Val& data = c.in(0);
    const Val& idx = c.in(1);
    const int64_t r = static_cast<int64_t>(data.dims.size());
    if (r == 0) c.fail("Gather needs data of rank >= 1");
    const int64_t axis = norm_axis(c, axis_attr, r);
    std::vector<int64_t> out(data.dims.begin(), data.dims.begin() + axis);
    out.insert(out.end(), idx.dims.begin(), idx.dims.end());
    out.insert(out.end(), data.dims.begin() + axis + 1, data.dims.end());
    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < axis; ++k) outer *= data.dims[k];
    for (int64_t k = axis + 1; k < r; ++k) inner *= data.dims[k];
    const void* dp = c.dev(0);
    const void* ip = c.dev(1);
    void* y = c.out(0, data.dtype, out);
    c.s.gather(dp, ip, idx.dtype == DType::I32, y, dtype_size(data.dtype), outer, data.dims[axis], inner, idx.numel(),
               c.err, c.err_code);
  });
}

}  // namespace

void add_data_ops(DeviceOpTable& t) {
  t.add("", "Transpose", build_transpose);
  t.add("", "Concat", build_concat);
  t.add("", "Slice", build_slice);
  t.add("", "Split", build_split);
  t.add("", "Expand", build_expand);
  t.add("", "Tile", build_tile);
  t.add("", "Gather", build_gather);
}

}  // namespace quiver::gpu
