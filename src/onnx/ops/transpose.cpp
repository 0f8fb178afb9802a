// Transpose: output dim i = input dim perm[i] (default: reversed). The permuted view is collapsed
// (adjacent dims that stay adjacent are merged). Fast paths: an identity permutation is one memcpy;
// when the innermost output dim stays innermost, contiguous runs are memcpy'd; otherwise the
// innermost output dim and the dim that is contiguous in the input are moved in cache-sized tiles.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

namespace {
// Copies src into contiguous dst where the copy unit is a run of `run` contiguous elements: `dims`
// and element `strides` describe the units; the last unit dim (source stride sl) and unit dim `k`
// (source stride == run, i.e. adjacent in the source) are moved in cache-sized tiles so that both
// the reads and the writes stay local. run == 1 is a plain element transpose.
template <class T, bool Runs>
void tiled_transpose(const T* src, T* dst, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides, size_t k,
                     int64_t run) {
  const size_t r = dims.size();
  const auto os = contiguous_strides(dims);  // in units
  const int64_t nk = dims[k], nl = dims[r - 1], sl = strides[r - 1], ok = os[k] * run;
  std::vector<size_t> rest;
  for (size_t d = 0; d + 1 < r; ++d)
    if (d != k) rest.push_back(d);
  std::vector<int64_t> idx(rest.size(), 0);
  int64_t outer = 1;
  for (auto d : rest) outer *= dims[d];
  constexpr int64_t B = Runs ? 16 : 32;
  int64_t soff = 0, doff = 0;
  for (int64_t o = 0; o < outer; ++o) {
    const T* s = src + soff;
    T* dd = dst + doff;
    for (int64_t k0 = 0; k0 < nk; k0 += B) {
      const int64_t k1 = std::min(nk, k0 + B);
      for (int64_t l0 = 0; l0 < nl; l0 += B) {
        const int64_t l1 = std::min(nl, l0 + B);
        for (int64_t kk = k0; kk < k1; ++kk) {
          T* drow = dd + kk * ok;
          const T* scol = s + kk * run;
          if constexpr (!Runs) {
            for (int64_t ll = l0; ll < l1; ++ll) drow[ll] = scol[ll * sl];
          } else {
            for (int64_t ll = l0; ll < l1; ++ll) copy_n_elems(scol + ll * sl, drow + ll * run, run);
          }
        }
      }
    }
    for (size_t j = rest.size(); j-- > 0;) {
      const size_t d = rest[j];
      if (++idx[j] < dims[d]) { soff += strides[d]; doff += os[d] * run; break; }
      soff -= strides[d] * (dims[d] - 1);
      doff -= os[d] * run * (dims[d] - 1);
      idx[j] = 0;
    }
  }
}

template <class T>
void transpose(const T* src, T* dst, std::vector<int64_t> dims, std::vector<int64_t> strides) {
  collapse_strided(dims, strides);
  const size_t r = dims.size();
  if (r >= 2 && strides[r - 1] != 1 && dims[r - 1] >= 4) {
    for (size_t k = 0; k + 1 < r; ++k)
      if (strides[k] == 1 && dims[k] >= 4) {
        tiled_transpose<T, false>(src, dst, dims, strides, k, 1);
        return;
      }
  }
  // Short contiguous runs (e.g. [S, B*H, 16] -> [B*H, S, 16]): tile the runs.
  if (r >= 3 && strides[r - 1] == 1 && dims[r - 1] <= 64 && dims[r - 2] >= 4) {
    const int64_t run = dims[r - 1];
    for (size_t k = 0; k + 2 < r; ++k)
      if (strides[k] == run && dims[k] >= 4) {
        std::vector<int64_t> ud(dims.begin(), dims.end() - 1), us(strides.begin(), strides.end() - 1);
        tiled_transpose<T, true>(src, dst, ud, us, k, run);
        return;
      }
  }
  strided_copy(src, dst, dims, strides);
}
}  // namespace

// quiver compile: any permutation through the runtime's strided copy.
void emit_transpose(Emit& e) {
  const int r = e.rank_in(0);
  std::vector<int64_t> perm = e.attrs().get_ints("perm");
  if (perm.empty())
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int>(perm.size()) != r) e.refuse("perm does not match the rank");
  std::string p, d;
  for (int i = 0; i < r; ++i) {
    p += (i ? ", " : "") + std::to_string(perm[static_cast<size_t>(i)]);
    d += "O0.d[" + std::to_string(i) + "] = I0.d[" + std::to_string(perm[static_cast<size_t>(i)]) + "]; ";
  }
  e.shape("O0.r = " + std::to_string(r) + "; " + d + "\n");
  e.compute("static const int perm[] = {" + (p.empty() ? std::string("0") : p) + "};\nrt::transpose(x0, I0, y0, perm);\n");
}

QUIVER_REGISTER_OPS(transpose) {
  registry.add({"", "Transpose", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  const bool has_perm = ctx.attrs().has("perm");
                  const std::vector<int64_t> perm = ctx.attrs().get_ints("perm");
                  auto check = [](const std::vector<int64_t>& p, size_t r) {
                    if (p.size() != r) return false;
                    std::vector<bool> seen(r, false);
                    for (auto v : p) {
                      if (v < 0 || v >= static_cast<int64_t>(r) || seen[v]) return false;
                      seen[v] = true;
                    }
                    return true;
                  };
                  std::optional<std::vector<int64_t>> shape;
                  if (const auto& in = ctx.input(0).shape) {
                    std::vector<int64_t> p = perm;
                    if (!has_perm)
                      for (size_t i = 0; i < in->size(); ++i) p.push_back(static_cast<int64_t>(in->size() - 1 - i));
                    if (!check(p, in->size()))
                      ctx.fail("perm " + dims_to_string(p) + " is not a permutation of rank " + std::to_string(in->size()));
                    shape = std::vector<int64_t>(in->size());
                    for (size_t i = 0; i < p.size(); ++i) (*shape)[i] = (*in)[p[i]];
                  }
                  ctx.set_output(0, t, shape);
                  return make_kernel([t, has_perm, perm, check](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const size_t r = x.rank();
                    std::vector<int64_t> p = perm;
                    if (!has_perm)
                      for (size_t i = 0; i < r; ++i) p.push_back(static_cast<int64_t>(r - 1 - i));
                    if (!check(p, r)) ec.fail("perm " + dims_to_string(p) + " is not a permutation of rank " + std::to_string(r));
                    const auto xs = contiguous_strides(x.dims());
                    std::vector<int64_t> od(r), st(r);
                    for (size_t i = 0; i < r; ++i) { od[i] = x.dim(p[i]); st[i] = xs[p[i]]; }
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if (r == 0) { y.data<T>()[0] = x.data<T>()[0]; return; }
                      transpose(x.data<T>(), y.data<T>(), od, st);
                    });
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(transpose) {
  emitters.add("", "Transpose", exact(emit_transpose));
}
}  // namespace quiver::onnx
