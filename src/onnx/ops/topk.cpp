// TopK: the k largest (or smallest) values along `axis` and their int64 indices. Ties keep the lower
// index first. k is an attribute before opset 10 and a 1-element input from 10.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

namespace {
template <class T>
void topk(const T* x, T* vals, int64_t* idx, int64_t outer, int64_t n, int64_t inner, int64_t k, bool largest,
          std::vector<std::pair<T, int64_t>>& buf) {
  buf.resize(static_cast<size_t>(n));
  auto gt = [](const std::pair<T, int64_t>& a, const std::pair<T, int64_t>& b) {
    if constexpr (std::is_floating_point_v<T>) {
      // NaN counts as largest.
      const bool an = std::isnan(a.first), bn = std::isnan(b.first);
      if (an || bn) return an && !bn ? true : (an && bn ? a.second < b.second : false);
    }
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  auto lt = [](const std::pair<T, int64_t>& a, const std::pair<T, int64_t>& b) {
    if constexpr (std::is_floating_point_v<T>) {
      const bool an = std::isnan(a.first), bn = std::isnan(b.first);
      if (an || bn) return !an && bn ? true : (an && bn ? a.second < b.second : false);
    }
    return a.first < b.first || (a.first == b.first && a.second < b.second);
  };
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const T* px = x + o * n * inner + i;
      for (int64_t j = 0; j < n; ++j) buf[j] = {px[j * inner], j};
      if (largest) std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), gt);
      else std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), lt);
      T* pv = vals + o * k * inner + i;
      int64_t* pi = idx + o * k * inner + i;
      for (int64_t j = 0; j < k; ++j) {
        pv[j * inner] = buf[j].first;
        pi[j * inner] = buf[j].second;
      }
    }
}
}  // namespace

// quiver compile: k from the attribute or read in the shape pass; partial sort with the engine's ties.
// A k computed from tensor data (not from dims) cannot be read in the shape pass: then the axis' dim
// bounds the outputs and the compute reads k and sets their dims (Emit::data_form).
void emit_topk(Emit& e) {
  if (e.in(0).dtype != DType::F32 && e.in(0).dtype != DType::I64) e.refuse("element type");
  const int r = e.rank_in(0);
  int64_t a = e.attrs().get_int("axis", -1);
  if (a < 0) a += r;
  if (a < 0 || a >= r) e.refuse("axis out of range");
  const bool largest = e.attrs().get_int("largest", 1) != 0;
  const std::string A = std::to_string(a);
  const std::string check = "if (k < 0 || k > I0.d[" + A + "]) fail(\"k (input K) is outside [0, the dim of the axis]\");\n";
  if (e.node().opset() < 10) {
    e.shape("const int64_t k = " + std::to_string(e.attrs().get_int("k", 0)) + ";\n" + check + "O0 = I0;\nO0.d[" + A +
            "] = k;\nO1 = O0;\n");
  } else {
    e.read_values(1);
    e.dims_only(1);
    const std::string one = "if (I1.n() != 1) fail(\"K must have exactly one element\");\n";
    const std::string k = "const int64_t k = static_cast<int64_t>(x1[0]);\n" + check;
    e.shape(one + k + "O0 = I0;\nO0.d[" + A + "] = k;\nO1 = O0;\n");
    e.data_form(one + "O0 = I0;\nO1 = O0;\n", k + "O0.d[" + A + "] = k;\nO1.d[" + A + "] = k;\n");
  }
  e.scratch("8 * I0.d[" + A + "]");
  e.compute(std::string("rt::topk(x0, y0, y1, I0.span(0, ") + A + "), I0.d[" + A + "], I0.span(" + A + " + 1, I0.r), O0.d[" + A +
            "], " + (largest ? "true" : "false") + ", static_cast<int64_t*>(scratch));\n");
}

QUIVER_REGISTER_OPS(topk) {
  registry.add({"", "TopK", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const DType t = ctx.input_dtype(0);
                  const int64_t axis = ctx.attrs().get_int("axis", -1);
                  const bool largest = ctx.attrs().get_int("largest", 1) != 0;
                  std::optional<int64_t> kconst;
                  if (ctx.opset() < 10) {
                    ctx.expect_inputs(1, 1);
                    kconst = ctx.attrs().req_int("k");
                  } else {
                    ctx.expect_inputs(2, 2);
                    ctx.expect_dtype(1, {DType::I64});
                    if (auto k = ctx.const_ints(1)) {
                      if (k->size() != 1) ctx.fail("K must have exactly one element");
                      kconst = (*k)[0];
                    }
                  }
                  if (t == DType::String || t == DType::Bool) ctx.fail("unsupported dtype " + std::string(dtype_name(t)));
                  std::optional<std::vector<int64_t>> shape;
                  if (const auto& in = ctx.input(0).shape; in && !in->empty()) {
                    shape = *in;
                    (*shape)[norm_axis(axis, static_cast<int64_t>(in->size()), nullptr, &ctx)] = kconst ? *kconst : -1;
                  }
                  ctx.set_output(0, t, shape);
                  ctx.set_output(1, DType::I64, shape);
                  return make_kernel([t, axis, largest, kconst](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t r = static_cast<int64_t>(x.rank());
                    if (r == 0) ec.fail("input must have rank >= 1");
                    const int64_t a = norm_axis(axis, r, &ec);
                    int64_t k;
                    if (kconst) k = *kconst;
                    else {
                      const auto kv = read_ints(ec.input(1));
                      if (kv.size() != 1) ec.fail("K must have exactly one element", "K");
                      k = kv[0];
                    }
                    const int64_t n = x.dim(a);
                    if (k < 0 || k > n) ec.fail("k = " + std::to_string(k) + " out of range for axis of size " + std::to_string(n));
                    std::vector<int64_t> od = x.dims();
                    od[a] = k;
                    Tensor& v = ec.output(0, t, od);
                    Tensor& ix = ec.output(1, DType::I64, od);
                    if (v.numel() == 0) return;
                    const int64_t outer = product(x.dims(), 0, a), inner = product(x.dims(), a + 1);
                    visit_dtype(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool>) {
                        ec.fail("unsupported dtype");
                      } else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
                        std::vector<float> xf(static_cast<size_t>(x.numel())), vf(static_cast<size_t>(v.numel()));
                        for (size_t i = 0; i < xf.size(); ++i) xf[i] = static_cast<float>(x.data<T>()[i]);
                        std::vector<std::pair<float, int64_t>> buf;
                        topk(xf.data(), vf.data(), ix.data<int64_t>(), outer, n, inner, k, largest, buf);
                        for (size_t i = 0; i < vf.size(); ++i) v.data<T>()[i] = T(vf[i]);
                      } else {
                        std::vector<std::pair<T, int64_t>> buf;
                        topk(x.data<T>(), v.data<T>(), ix.data<int64_t>(), outer, n, inner, k, largest, buf);
                      }
                    });
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(topk) {
  emitters.add("", "TopK", exact(emit_topk));
}
}  // namespace quiver::onnx
