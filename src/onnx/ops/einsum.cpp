// Einsum(equation, inputs...): general Einstein summation by direct loops over every label. Supports
// explicit ("ij,jk->ik") and implicit ("ij,jk": output = labels seen once, sorted) output, repeated
// labels within one operand (diagonals), "..." with numpy broadcasting of the ellipsis dims.
// Accumulates in double for floating types and in int64 for integers.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

constexpr int kEllBase = 52;  // labels 0..51 are letters, kEllBase + k the k-th ellipsis dim

struct Term {
  std::vector<int> labels;  // letters before the ellipsis, then ellipsis marker -1, then letters after
  bool has_ellipsis = false;
};

int letter_id(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -2;
}

struct Equation {
  std::vector<Term> inputs;
  Term output;
  bool explicit_output = false;
};

Equation parse_equation(const std::string& eq, const BuildContext& ctx) {
  std::string s;
  for (char c : eq)
    if (!std::isspace(static_cast<unsigned char>(c))) s.push_back(c);
  Equation e;
  const size_t arrow = s.find("->");
  const std::string lhs = arrow == std::string::npos ? s : s.substr(0, arrow);
  auto parse_term = [&](const std::string& t) {
    Term term;
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i] == '.') {
        if (t.compare(i, 3, "...") != 0 || term.has_ellipsis) ctx.fail("bad ellipsis in einsum equation '" + eq + "'");
        term.has_ellipsis = true;
        term.labels.push_back(-1);
        i += 2;
        continue;
      }
      const int id = letter_id(t[i]);
      if (id < 0) ctx.fail(std::string("bad character '") + t[i] + "' in einsum equation '" + eq + "'");
      term.labels.push_back(id);
    }
    return term;
  };
  size_t start = 0;
  while (true) {
    const size_t comma = lhs.find(',', start);
    e.inputs.push_back(parse_term(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (arrow != std::string::npos) {
    e.explicit_output = true;
    e.output = parse_term(s.substr(arrow + 2));
  }
  return e;
}

}  // namespace

QUIVER_REGISTER_OPS(einsum) {
  registry.add({"", "Einsum", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const std::string eqs = ctx.attrs().req_string("equation");
                  const Equation eq = parse_equation(eqs, ctx);
                  if (eq.inputs.size() != ctx.num_inputs())
                    ctx.fail("equation '" + eqs + "' has " + std::to_string(eq.inputs.size()) + " operands but the node has " +
                             std::to_string(ctx.num_inputs()) + " inputs");
                  const DType t = ctx.input_dtype(0);
                  for (size_t i = 1; i < ctx.num_inputs(); ++i)
                    if (ctx.input_dtype(i) != t) ctx.fail("input dtypes differ", ctx.input_name(i));
                  if (!dtype_is_float(t) && !dtype_is_integer(t))
                    ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
                  ctx.set_output(0, t);
                  return make_kernel([eq, eqs, t](ExecContext& ec) {
                    const size_t nin = eq.inputs.size();
                    // Ellipsis rank = the most dims any operand's "..." covers.
                    std::vector<int64_t> ell_rank(nin, 0);
                    int64_t E = 0;
                    for (size_t k = 0; k < nin; ++k) {
                      const Term& term = eq.inputs[k];
                      const int64_t letters = static_cast<int64_t>(term.labels.size()) - (term.has_ellipsis ? 1 : 0);
                      const int64_t r = static_cast<int64_t>(ec.input(k).rank());
                      if (term.has_ellipsis ? r < letters : r != letters)
                        ec.fail("operand " + std::to_string(k) + " has rank " + std::to_string(r) + ", which does not match '" + eqs + "'");
                      ell_rank[k] = term.has_ellipsis ? r - letters : 0;
                      E = std::max(E, ell_rank[k]);
                    }
                    const int L = kEllBase + static_cast<int>(E);
                    std::vector<int64_t> size(static_cast<size_t>(L), -1);
                    std::vector<int> count(static_cast<size_t>(L), 0);
                    // Per operand: for each of its dims, the label it belongs to.
                    std::vector<std::vector<int>> dim_label(nin);
                    for (size_t k = 0; k < nin; ++k) {
                      const Tensor& x = ec.input(k);
                      for (int lab : eq.inputs[k].labels) {
                        if (lab == -1) {
                          for (int64_t j = 0; j < ell_rank[k]; ++j)
                            dim_label[k].push_back(kEllBase + static_cast<int>(E - ell_rank[k] + j));
                        } else {
                          dim_label[k].push_back(lab);
                        }
                      }
                      for (size_t d = 0; d < dim_label[k].size(); ++d) {
                        const int lab = dim_label[k][d];
                        const int64_t n = x.dim(d);
                        int64_t& s = size[static_cast<size_t>(lab)];
                        if (s == -1) {
                          s = n;
                        } else if (s != n) {
                          // Ellipsis dims broadcast (1 against n); letters must agree.
                          if (lab >= kEllBase && (s == 1 || n == 1)) s = std::max(s, n);
                          else ec.fail("dimension mismatch for a label in einsum '" + eqs + "': " + std::to_string(s) + " vs " + std::to_string(n));
                        }
                        ++count[static_cast<size_t>(lab)];
                      }
                    }
                    // Output labels.
                    std::vector<int> out_labels;
                    if (eq.explicit_output) {
                      for (int lab : eq.output.labels) {
                        if (lab == -1) {
                          for (int64_t j = 0; j < E; ++j) out_labels.push_back(kEllBase + static_cast<int>(j));
                        } else {
                          if (size[static_cast<size_t>(lab)] < 0) ec.fail("output label not among the inputs in '" + eqs + "'");
                          out_labels.push_back(lab);
                        }
                      }
                    } else {
                      for (int64_t j = 0; j < E; ++j) out_labels.push_back(kEllBase + static_cast<int>(j));
                      for (int lab = 0; lab < kEllBase; ++lab)
                        if (count[static_cast<size_t>(lab)] == 1) out_labels.push_back(lab);
                    }
                    std::vector<char> is_out(static_cast<size_t>(L), 0);
                    for (int lab : out_labels) is_out[static_cast<size_t>(lab)] = 1;
                    std::vector<int> sum_labels;
                    for (int lab = 0; lab < L; ++lab)
                      if (size[static_cast<size_t>(lab)] >= 0 && !is_out[static_cast<size_t>(lab)]) sum_labels.push_back(lab);
                    std::vector<int64_t> od;
                    for (int lab : out_labels) od.push_back(size[static_cast<size_t>(lab)]);
                    Tensor& y = ec.output(0, t, od);
                    // Per operand and label: the element stride (summed over repeated dims, 0 for broadcast).
                    std::vector<std::vector<int64_t>> lstride(nin, std::vector<int64_t>(static_cast<size_t>(L), 0));
                    for (size_t k = 0; k < nin; ++k) {
                      const Tensor& x = ec.input(k);
                      int64_t s = 1;
                      for (size_t d = x.rank(); d-- > 0;) {
                        if (x.dim(d) != 1) lstride[k][static_cast<size_t>(dim_label[k][d])] += s;
                        s *= x.dim(d);
                      }
                    }
                    const int64_t out_n = y.numel();
                    int64_t sum_n = 1;
                    for (int lab : sum_labels) sum_n *= size[static_cast<size_t>(lab)];
                    visit_numeric_half(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      using A = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double, int64_t>;
                      std::vector<const T*> px(nin);
                      for (size_t k = 0; k < nin; ++k) px[k] = ec.input(k).template data<T>();
                      T* py = y.data<T>();
                      std::vector<int64_t> oidx(out_labels.size(), 0), sidx(sum_labels.size(), 0);
                      std::vector<int64_t> base(nin, 0), off(nin, 0);
                      for (int64_t o = 0; o < out_n; ++o) {
                        A acc = 0;
                        if (sum_n > 0) {
                          std::fill(sidx.begin(), sidx.end(), 0);
                          off = base;
                          for (int64_t s = 0; s < sum_n; ++s) {
                            A p = 1;
                            for (size_t k = 0; k < nin; ++k) p *= static_cast<A>(to_compute(px[k][off[k]]));
                            acc += p;
                            for (size_t d = sum_labels.size(); d-- > 0;) {
                              const size_t lab = static_cast<size_t>(sum_labels[d]);
                              if (++sidx[d] < size[lab]) {
                                for (size_t k = 0; k < nin; ++k) off[k] += lstride[k][lab];
                                break;
                              }
                              for (size_t k = 0; k < nin; ++k) off[k] -= lstride[k][lab] * (size[lab] - 1);
                              sidx[d] = 0;
                            }
                          }
                        }
                        py[o] = from_compute<T>(static_cast<compute_t<T>>(acc));
                        for (size_t d = out_labels.size(); d-- > 0;) {
                          const size_t lab = static_cast<size_t>(out_labels[d]);
                          if (++oidx[d] < size[lab]) {
                            for (size_t k = 0; k < nin; ++k) base[k] += lstride[k][lab];
                            break;
                          }
                          for (size_t k = 0; k < nin; ++k) base[k] -= lstride[k][lab] * (size[lab] - 1);
                          oidx[d] = 0;
                        }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
