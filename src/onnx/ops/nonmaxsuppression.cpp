// NonMaxSuppression: per batch and class, boxes with score > score_threshold are taken greedily in
// descending score order (ties: lower box index first), dropping any whose IoU with an already
// selected box exceeds iou_threshold, up to max_output_boxes_per_class. Output [num, 3] int64 of
// (batch, class, box). center_point_box=1: boxes are [xc, yc, w, h]; 0: two corners in any order.
#include <numeric>

#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
struct Box { float y1, x1, y2, x2, area; };

Box make_box(const float* b, bool center) {
  Box r;
  if (center) {
    const float xc = b[0], yc = b[1], w = b[2], h = b[3];
    r.x1 = xc - w / 2; r.x2 = xc + w / 2; r.y1 = yc - h / 2; r.y2 = yc + h / 2;
  } else {
    r.y1 = std::min(b[0], b[2]); r.y2 = std::max(b[0], b[2]);
    r.x1 = std::min(b[1], b[3]); r.x2 = std::max(b[1], b[3]);
  }
  r.area = (r.y2 - r.y1) * (r.x2 - r.x1);
  return r;
}

bool suppress(const Box& a, const Box& b, float iou_threshold) {
  if (a.area <= 0 || b.area <= 0) return false;
  const float ix1 = std::max(a.x1, b.x1), iy1 = std::max(a.y1, b.y1);
  const float ix2 = std::min(a.x2, b.x2), iy2 = std::min(a.y2, b.y2);
  if (ix2 <= ix1 || iy2 <= iy1) return false;
  const float inter = (ix2 - ix1) * (iy2 - iy1);
  const float iou = inter / (a.area + b.area - inter);
  return iou > iou_threshold;
}
}  // namespace

QUIVER_REGISTER_OPS(nonmaxsuppression) {
  registry.add({"", "NonMaxSuppression", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 5);
                  ctx.expect_dtype(0, {DType::F32});
                  ctx.expect_dtype(1, {DType::F32});
                  const bool center = ctx.attrs().get_int("center_point_box", 0) != 0;
                  ctx.set_output(0, DType::I64, std::vector<int64_t>{-1, 3});
                  return make_kernel([center](ExecContext& ec) {
                    const Tensor& boxes = ec.input(0);
                    const Tensor& scores = ec.input(1);
                    if (boxes.rank() != 3 || boxes.dim(2) != 4) ec.fail("boxes must be [batch, boxes, 4]", "boxes");
                    if (scores.rank() != 3 || scores.dim(0) != boxes.dim(0) || scores.dim(2) != boxes.dim(1))
                      ec.fail("scores must be [batch, classes, boxes] matching boxes", "scores");
                    int64_t max_out = 0;
                    if (ec.has_input(2) && ec.input(2).numel() > 0) max_out = read_ints(ec.input(2))[0];
                    float iou_t = 0, score_t = -std::numeric_limits<float>::infinity();
                    bool has_score_t = false;
                    if (ec.has_input(3) && ec.input(3).numel() > 0) iou_t = static_cast<float>(read_scalar_f64(ec.input(3)));
                    if (ec.has_input(4) && ec.input(4).numel() > 0) {
                      score_t = static_cast<float>(read_scalar_f64(ec.input(4)));
                      has_score_t = true;
                    }
                    if (iou_t < 0 || iou_t > 1) ec.fail("iou_threshold must be in [0, 1]", "iou_threshold");
                    const int64_t B = boxes.dim(0), N = boxes.dim(1), C = scores.dim(1);
                    std::vector<int64_t> out;
                    std::vector<Box> bx(static_cast<size_t>(N));
                    std::vector<int64_t> order;
                    std::vector<int64_t> sel;
                    for (int64_t b = 0; b < B; ++b) {
                      const float* pb = boxes.data<float>() + b * N * 4;
                      for (int64_t i = 0; i < N; ++i) bx[i] = make_box(pb + i * 4, center);
                      for (int64_t c = 0; c < C && max_out > 0; ++c) {
                        const float* ps = scores.data<float>() + (b * C + c) * N;
                        order.clear();
                        for (int64_t i = 0; i < N; ++i)
                          if (!has_score_t || ps[i] > score_t) order.push_back(i);
                        std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) { return ps[p] > ps[q]; });
                        sel.clear();
                        for (int64_t i : order) {
                          if (static_cast<int64_t>(sel.size()) >= max_out) break;
                          bool keep = true;
                          for (int64_t s : sel)
                            if (suppress(bx[s], bx[i], iou_t)) { keep = false; break; }
                          if (keep) {
                            sel.push_back(i);
                            out.insert(out.end(), {b, c, i});
                          }
                        }
                      }
                    }
                    Tensor& y = ec.output(0, DType::I64, {static_cast<int64_t>(out.size() / 3), 3});
                    std::copy(out.begin(), out.end(), y.data<int64_t>());
                  });
                }});
}
}  // namespace quiver::onnx
