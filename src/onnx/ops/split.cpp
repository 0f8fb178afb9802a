// Split: along `axis` into parts given by `split` (attribute before opset 13, input from 13) or into
// equal parts (num_outputs from opset 18: ceil-sized chunks, the last one smaller). Each part is
// copied with one memcpy per outer row.
#include "onnx/emit.hpp"
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
std::vector<int64_t> part_sizes(int64_t dim, size_t nout, const std::vector<int64_t>* split, ExecContext* ec,
                                const BuildContext* bc) {
  auto fail = [&](const std::string& m) {
    if (ec) ec->fail(m);
    if (bc) bc->fail(m);
    throw_error(ErrorCode::InvalidArgument, m);
  };
  std::vector<int64_t> parts;
  if (split) {
    if (split->size() != nout)
      fail("split has " + std::to_string(split->size()) + " entries for " + std::to_string(nout) + " outputs");
    int64_t sum = 0;
    for (auto v : *split) {
      if (v < 0) fail("negative split size");
      sum += v;
    }
    if (sum != dim) fail("split sizes sum to " + std::to_string(sum) + ", dim is " + std::to_string(dim));
    return *split;
  }
  const int64_t n = static_cast<int64_t>(nout);
  const int64_t chunk = (dim + n - 1) / n;
  int64_t left = dim;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = std::min(chunk, left);
    parts.push_back(c);
    left -= c;
  }
  return parts;
}
}  // namespace

QUIVER_REGISTER_OPS(split) {
  registry.add({"", "Split", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 2);
                  const DType t = ctx.input_dtype(0);
                  const int64_t axis = ctx.attrs().get_int("axis", 0);
                  const size_t nout = ctx.num_outputs();
                  if (ctx.attrs().has("num_outputs") && ctx.attrs().get_int("num_outputs", 0) != static_cast<int64_t>(nout))
                    ctx.fail("num_outputs does not match the number of outputs");
                  std::optional<std::vector<int64_t>> split;
                  bool split_input = false;
                  if (ctx.opset() < 13 || !ctx.has_input(1)) {
                    if (ctx.attrs().has("split")) split = ctx.attrs().get_ints("split");
                    else if (ctx.has_input(1)) split_input = true;  // Split-1/2 accepted split as an input
                  } else {
                    split = ctx.const_ints(1);
                    split_input = !split;
                  }
                  if (split_input && ctx.has_input(1) && ctx.input(1).constant) { split = ctx.const_ints(1); split_input = false; }
                  const auto& in = ctx.input(0).shape;
                  for (size_t i = 0; i < nout; ++i) {
                    std::optional<std::vector<int64_t>> shape;
                    if (in && !in->empty()) {
                      const int64_t a = norm_axis(axis, static_cast<int64_t>(in->size()), nullptr, &ctx);
                      shape = *in;
                      (*shape)[a] = -1;
                      if ((*in)[a] >= 0 && !split_input) {
                        auto parts = part_sizes((*in)[a], nout, split ? &*split : nullptr, nullptr, &ctx);
                        (*shape)[a] = parts[i];
                      } else if (split) {
                        (*shape)[a] = (*split)[i];
                      }
                    }
                    ctx.set_output(i, t, shape);
                  }
                  return make_kernel([t, axis, split, split_input](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t r = static_cast<int64_t>(x.rank());
                    if (r == 0) ec.fail("cannot split a scalar");
                    const int64_t a = norm_axis(axis, r, &ec);
                    const size_t nout = ec.num_outputs();
                    std::vector<int64_t> sp;
                    if (split_input && ec.has_input(1)) sp = read_ints(ec.input(1));
                    const std::vector<int64_t>* use = split ? &*split : (split_input && ec.has_input(1) ? &sp : nullptr);
                    const auto parts = part_sizes(x.dim(a), nout, use, &ec, nullptr);
                    const int64_t outer = product(x.dims(), 0, a), inner = product(x.dims(), a + 1);
                    const int64_t row = x.dim(a) * inner;
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      int64_t col = 0;
                      std::vector<int64_t> od = x.dims();
                      for (size_t i = 0; i < nout; ++i) {
                        const int64_t blk = parts[i] * inner;
                        if (ec.wants_output(i)) {
                          od[a] = parts[i];
                          Tensor& y = ec.output(i, t, od);
                          T* py = y.data<T>();
                          if (blk > 0)
                            for (int64_t o = 0; o < outer; ++o) copy_n_elems(px + o * row + col, py + o * blk, blk);
                        }
                        col += blk;
                      }
                    });
                  });
                }}, Repro::Exact);
}

namespace {

// quiver compile: the part sizes are constants (attribute or constant input) or equal ceil-sized
// chunks of the runtime dim; each wanted part is copied one outer row at a time.
void emit_split(Emit& e) {
  const int r = e.rank_in(0);
  if (r == 0) e.refuse("cannot split a scalar");
  int64_t a = e.attrs().get_int("axis", 0);
  if (a < 0) a += r;
  if (a < 0 || a >= r) e.refuse("axis out of range");
  const size_t nout = e.num_outputs();
  std::optional<std::vector<int64_t>> split;
  if (e.attrs().has("split")) split = e.attrs().get_ints("split");
  if (e.num_inputs() > 1 && e.has_input(1)) {
    split = e.node().const_ints(1);
    if (!split) e.refuse("split sizes computed at run time");
    e.dims_only(1);
  }
  const std::string A = std::to_string(a), N = std::to_string(nout);
  std::string sh = "const int64_t d = I0.d[" + A + "];\nint64_t sz[" + N + "];\n";
  if (split) {
    if (split->size() != nout) e.refuse("split has " + std::to_string(split->size()) + " entries for " + N + " outputs");
    for (size_t k = 0; k < nout; ++k) {
      if ((*split)[k] < 0) e.refuse("negative split size");
      sh += "sz[" + std::to_string(k) + "] = " + std::to_string((*split)[k]) + ";\n";
    }
    int64_t total = 0;
    for (int64_t v : *split) total += v;
    sh += "if (d != " + std::to_string(total) + ") fail(\"split sizes do not sum to the dim\");\n";
  } else {
    sh += "{\n  const int64_t chunk = (d + " + N + " - 1) / " + N + ";\n  int64_t left = d;\n  for (int k = 0; k < " + N +
          "; ++k) {\n    sz[k] = std::min(chunk, left);\n    left -= sz[k];\n  }\n}\n";
  }
  std::string cp = "const int64_t outer = I0.span(0, " + A + "), inner = I0.span(" + A + " + 1, I0.r), row = I0.d[" + A +
                   "] * inner;\nint64_t col = 0;\n";
  for (size_t k = 0; k < nout; ++k) {
    const std::string K = std::to_string(k);
    sh += "O" + K + " = I0;\nO" + K + ".d[" + A + "] = sz[" + K + "];\n";
    cp += "{\n  const int64_t blk = O" + K + ".d[" + A + "] * inner;\n";
    if (e.wanted(k))
      cp += "  for (int64_t o = 0; o < outer && blk > 0; ++o)\n    std::memcpy(y" + K + " + o * blk, x0 + o * row + col, "
            "static_cast<size_t>(blk) * sizeof(*x0));\n";
    cp += "  col += blk;\n}\n";
  }
  e.tin(0);
  e.shape(sh);
  e.compute(cp);
}

}  // namespace

QUIVER_REGISTER_EMITTERS(split) { emitters.add("", "Split", exact(emit_split)); }

}  // namespace quiver::onnx
