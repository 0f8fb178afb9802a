// Gather: out = data[:axis] x indices.shape x data[axis+1:]; each index selects a contiguous block
// of prod(data[axis+1:]) elements, copied with memcpy. Negative indices count from the end.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

namespace {
template <class I>
void check_indices(const I* idx, int64_t n, int64_t dim, ExecContext& ec) {
  for (int64_t i = 0; i < n; ++i)
    if (idx[i] < -dim || idx[i] >= dim)
      ec.fail("index " + std::to_string(static_cast<int64_t>(idx[i])) + " out of range [" + std::to_string(-dim) + ", " +
              std::to_string(dim) + ")", "indices");
}

template <class T, class I>
void gather(const T* x, const I* idx, T* y, int64_t outer, int64_t dim, int64_t nidx, int64_t inner) {
  if (inner == 1) {
    for (int64_t o = 0; o < outer; ++o) {
      const T* xo = x + o * dim;
      T* yo = y + o * nidx;
      for (int64_t j = 0; j < nidx; ++j) {
        const int64_t k = idx[j] < 0 ? idx[j] + dim : idx[j];
        yo[j] = xo[k];
      }
    }
    return;
  }
  for (int64_t o = 0; o < outer; ++o) {
    const T* xo = x + o * dim * inner;
    T* yo = y + o * nidx * inner;
    for (int64_t j = 0; j < nidx; ++j) {
      const int64_t k = idx[j] < 0 ? idx[j] + dim : idx[j];
      copy_n_elems(xo + k * inner, yo + j * inner, inner);
    }
  }
}
}  // namespace

// quiver compile: Gather along one axis (indices checked against the runtime dim).
void emit_gather(Emit& e) {
  const int r = e.rank_in(0), ri = e.rank_in(1);
  e.tin(0);
  int64_t a = e.attrs().get_int("axis", 0);
  if (a < 0) a += r;
  if (a < 0 || a >= r) e.refuse("axis out of range");
  std::string d;
  int k = 0;
  std::string s;
  for (int i = 0; i < a; ++i) s += "O0.d[" + std::to_string(k++) + "] = I0.d[" + std::to_string(i) + "]; ";
  for (int i = 0; i < ri; ++i) s += "O0.d[" + std::to_string(k++) + "] = I1.d[" + std::to_string(i) + "]; ";
  for (int i = static_cast<int>(a) + 1; i < r; ++i) s += "O0.d[" + std::to_string(k++) + "] = I0.d[" + std::to_string(i) + "]; ";
  e.shape("O0.r = " + std::to_string(k) + "; " + s + "\n");
  e.compute("if (!rt::gather(x0, I0, x1, I1.n(), " + std::to_string(a) + ", y0)) fail(\"index out of range\");\n");
}

QUIVER_REGISTER_OPS(gather) {
  registry.add({"", "Gather", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::I32, DType::I64});
                  const int64_t axis = ctx.attrs().get_int("axis", 0);
                  const DType t = ctx.input_dtype(0);
                  std::optional<std::vector<int64_t>> shape;
                  const auto& ds = ctx.input(0).shape;
                  const auto& is = ctx.input(1).shape;
                  if (ds && is && !ds->empty()) {
                    const int64_t a = norm_axis(axis, static_cast<int64_t>(ds->size()), nullptr, &ctx);
                    std::vector<int64_t> s(ds->begin(), ds->begin() + a);
                    s.insert(s.end(), is->begin(), is->end());
                    s.insert(s.end(), ds->begin() + a + 1, ds->end());
                    shape = s;
                  }
                  ctx.set_output(0, t, shape);
                  return make_kernel([axis, t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& ind = ec.input(1);
                    const int64_t r = static_cast<int64_t>(x.rank());
                    if (r == 0) ec.fail("data must have rank >= 1");
                    const int64_t a = norm_axis(axis, r, &ec);
                    std::vector<int64_t> od(x.dims().begin(), x.dims().begin() + a);
                    od.insert(od.end(), ind.dims().begin(), ind.dims().end());
                    od.insert(od.end(), x.dims().begin() + a + 1, x.dims().end());
                    const int64_t dim = x.dim(a), outer = product(x.dims(), 0, a), inner = product(x.dims(), a + 1);
                    const int64_t nidx = ind.numel();
                    if (ind.dtype() == DType::I64) check_indices(ind.data<int64_t>(), nidx, dim, ec);
                    else check_indices(ind.data<int32_t>(), nidx, dim, ec);
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if (ind.dtype() == DType::I64)
                        gather(x.data<T>(), ind.data<int64_t>(), y.data<T>(), outer, dim, nidx, inner);
                      else
                        gather(x.data<T>(), ind.data<int32_t>(), y.data<T>(), outer, dim, nidx, inner);
                    });
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(gather) {
  emitters.add("", "Gather", exact(emit_gather));
}
}  // namespace quiver::onnx
