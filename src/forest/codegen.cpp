// A Forest as C++ source: the flat nodes (the evaluator's layout, forest.cpp) as constant arrays and a
// walk written for this forest. Each row walks eight trees at a time (independent chains overlap their
// loads), sums in double in tree order and finishes exactly as Forest::finish does (margin in float; the
// sigmoid / exp transforms from the double sum, or, for a reproducible forest, from the float margin
// through the engine's own functions, rr::f_* of the reproducible runtime).
#include "forest/codegen.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>

#include "quiver/core/error.hpp"

namespace quiver::forest {

namespace {

std::string dlit(double v) {
  if (std::isnan(v)) return "std::numeric_limits<double>::quiet_NaN()";
  if (std::isinf(v)) return v > 0 ? "std::numeric_limits<double>::infinity()" : "-std::numeric_limits<double>::infinity()";
  char b[64];
  std::snprintf(b, sizeof b, "%a", v);
  return b;
}

template <class T>
Tensor tensor_of(DType t, const std::vector<T>& v) {
  Tensor r = Tensor::empty(t, {static_cast<int64_t>(v.size())});
  if (!v.empty()) std::memcpy(r.data<T>(), v.data(), v.size() * sizeof(T));
  return r;
}

}  // namespace

ForestCode emit_forest(const Forest& f, const std::string& rows, const std::string& n, const std::string& margin,
                       const std::string& prediction, size_t first_k) {
  const auto [rb, re] = f.default_rounds();
  const int32_t t0 = f.round_ptr().at(static_cast<size_t>(rb)), t1 = f.round_ptr().at(static_cast<size_t>(re));
  const int no = f.n_outputs(), nf = f.n_features(), npc = f.n_prediction_columns();
  const bool multi = no > 1;
  const bool cats = !f.category_sets().empty();

  ForestCode c;
  auto k = [&](size_t j) { return "K" + std::to_string(first_k + j); };
  {
    std::vector<uint32_t> nodes(f.n_nodes() * 4);
    static_assert(sizeof(FlatNode) == 16, "FlatNode is four 32-bit words");
    if (!nodes.empty()) std::memcpy(nodes.data(), f.nodes().data(), nodes.size() * 4);
    c.consts.push_back(tensor_of(DType::U32, nodes));
    std::vector<int32_t> roots(f.tree_roots().begin() + t0, f.tree_roots().begin() + t1);
    std::vector<uint8_t> depth(f.tree_depths().begin() + t0, f.tree_depths().begin() + t1);
    c.consts.push_back(tensor_of(DType::I32, roots));
    c.consts.push_back(tensor_of(DType::U8, depth));
    if (multi) {
      std::vector<uint16_t> outs(f.tree_outputs().begin() + t0, f.tree_outputs().begin() + t1);
      c.consts.push_back(tensor_of(DType::U16, outs));
    }
    if (cats) {
      c.consts.push_back(tensor_of(DType::U32, f.category_words()));
      c.consts.push_back(tensor_of(DType::U32, f.category_sets()));
    }
  }
  // Per output: margin = base + scale * sum (scale = 1 / trees of the output when averaging).
  std::vector<double> scale(static_cast<size_t>(no), 1.0);
  if (f.average()) {
    std::vector<double> cnt(static_cast<size_t>(no), 0.0);
    for (int32_t t = t0; t < t1; ++t) cnt[f.tree_outputs()[static_cast<size_t>(t)]] += 1.0;
    for (int o = 0; o < no; ++o) scale[static_cast<size_t>(o)] = cnt[static_cast<size_t>(o)] > 0 ? 1.0 / cnt[static_cast<size_t>(o)] : 1.0;
  }
  const size_t nt = static_cast<size_t>(t1 - t0);
  std::ostringstream s;
  s << "// " << nt << " trees (rounds " << rb << ".." << re << "), " << f.n_nodes() << " nodes, " << nf << " features, "
    << no << " output(s), transform " << transform_name(f.transform()) << "\n";
  s << "const uint32_t* nd = " << k(0) << ";\nconst int32_t* root = " << k(1) << ";\nconst uint8_t* depth = " << k(2) << ";\n";
  size_t next = 3;
  if (multi) s << "const uint16_t* outs = " << k(next++) << ";\n";
  if (cats) {
    s << "const uint32_t* cat_words = " << k(next) << ";\nconst uint32_t* cat_sets = " << k(next + 1) << ";\n";
    next += 2;
  }
  s << "static constexpr double base[" << no << "] = {";
  for (int o = 0; o < no; ++o) s << (o ? ", " : "") << dlit(f.base_margin()[static_cast<size_t>(o)]);
  s << "};\n";
  s << "static constexpr double scale[" << no << "] = {";
  for (int o = 0; o < no; ++o) s << (o ? ", " : "") << dlit(scale[static_cast<size_t>(o)]);
  s << "};\n";
  s << "double* acc = static_cast<double*>(scratch);\nfloat* m = reinterpret_cast<float*>(acc + " << no << ");\n";
  // One step down a tree (forest.cpp step / step_special).
  s << "auto step = [&](const float* row, int32_t i) -> int32_t {\n"
       "  const uint32_t* p = nd + 4 * static_cast<int64_t>(i);\n"
       "  const uint32_t meta = p[1];\n"
       "  const float x = row[meta & 0x3ffffffu];\n"
       "  float v;\n  std::memcpy(&v, p, 4);\n";
  if (f.has_special_nodes()) {
    s << "  if (meta & 0x40000000u) {  // special: categorical, ==, zero-as-missing; left/right = true/false\n"
         "    const bool nan = x != x, dl = (meta & 0x80000000u) != 0;\n    bool left;\n";
    if (cats)
      s << "    if (meta & 0x20000000u) {\n"
           "      if (nan) {\n        left = dl;\n      } else {\n"
           "        uint32_t set;\n        std::memcpy(&set, p, 4);\n"
           "        const uint32_t wbegin = cat_sets[2 * set], nbits = cat_sets[2 * set + 1];\n"
           "        if (!(x >= 0.0f) || x >= static_cast<float>(nbits)) {\n"
           "          left = (meta & 0x4000000u) != 0;\n        } else {\n"
           "          const uint32_t code = static_cast<uint32_t>(x);\n"
           "          left = ((cat_words[wbegin + code / 32] >> (code % 32)) & 1u) != 0;\n        }\n      }\n"
           "    } else ";
    else s << "    ";
    s << "if (meta & 0x10000000u) {\n      left = nan ? dl : (x == v);\n"
         "    } else {\n      left = (nan || std::fabs(x) <= 1e-35f) ? dl : (x < v);\n    }\n"
         "    return static_cast<int32_t>(left ? p[2] : p[3]);\n  }\n";
  }
  s << "  // x < v goes right, with x's sign flipped where the meta's top bit says; NaN goes left (the\n"
       "  // missing-value child)\n"
       "  uint32_t xb;\n  std::memcpy(&xb, &x, 4);\n  xb ^= meta & 0x80000000u;\n  float xs;\n  std::memcpy(&xs, &xb, 4);\n"
       "  return static_cast<int32_t>(xs < v ? p[3] : p[2]);\n};\n";
  s << "auto leaf = [&](int32_t i) {\n  float v;\n  std::memcpy(&v, nd + 4 * static_cast<int64_t>(i), 4);\n"
       "  return static_cast<double>(v);\n};\n";
  const std::string out_of = multi ? "outs[t + j]" : "0";
  const std::string out_of1 = multi ? "outs[t]" : "0";
  s << "for (int64_t r = 0; r < static_cast<int64_t>(" << n << "); ++r) {\n"
    << "  const float* row = " << rows << " + r * " << nf << ";\n"
    << "  for (int o = 0; o < " << no << "; ++o) acc[o] = 0.0;\n"
    << "  int32_t t = 0;\n"
    << "  for (; t + 8 <= " << nt << "; t += 8) {\n"
    << "    int32_t i[8];\n    int d = 0;\n"
    << "    for (int j = 0; j < 8; ++j) {\n      i[j] = root[t + j];\n      d = std::max<int>(d, depth[t + j]);\n    }\n"
    << "    for (int l = 0; l < d; ++l)\n      for (int j = 0; j < 8; ++j) i[j] = step(row, i[j]);\n"
    << "    for (int j = 0; j < 8; ++j) acc[" << out_of << "] += leaf(i[j]);\n  }\n"
    << "  for (; t < " << nt << "; ++t) {\n    int32_t i = root[t];\n"
    << "    for (int l = 0, d = depth[t]; l < d; ++l) i = step(row, i);\n"
    << "    acc[" << out_of1 << "] += leaf(i);\n  }\n"
    << "  for (int o = 0; o < " << no << "; ++o) m[o] = static_cast<float>(base[o] + scale[o] * acc[o]);\n"
    << "  if (" << margin << ") std::memcpy(" << margin << " + r * " << no << ", m, " << no << " * sizeof(float));\n"
    << "  if (" << prediction << ") {\n"
    << "    float* pr = " << prediction << " + r * " << npc << ";\n";
  const std::string each = "    for (int o = 0; o < " + std::to_string(no) + "; ++o) ";
  // Reproducible: Forest::transform_row's float path element by element through the engine's own
  // functions (its kernels apply them to arrays), so the bits depend on neither libm nor the target.
  const bool repro = f.reproducible();
  switch (f.transform()) {
    case Transform::Identity: s << each << "pr[o] = m[o];\n"; break;
    case Transform::Sigmoid:
      if (repro) s << each << "pr[o] = rr::f_sigmoid(static_cast<float>(" << dlit(f.sigmoid_alpha()) << " * m[o]));\n";
      else
        s << each << "pr[o] = static_cast<float>(1.0 / (1.0 + std::exp(-" << dlit(f.sigmoid_alpha())
          << " * (base[o] + scale[o] * acc[o]))));\n";
      break;
    case Transform::Exp:
      if (repro) s << each << "pr[o] = rr::f_exp(m[o]);\n";
      else s << each << "pr[o] = static_cast<float>(std::exp(base[o] + scale[o] * acc[o]));\n";
      break;
    case Transform::TmvaGrad:  // 2 / (1 + e^-2m) - 1 = tanh m
      if (repro) s << each << "pr[o] = rr::f_tanh(m[o]);\n";
      else s << each << "pr[o] = static_cast<float>(2.0 / (1.0 + std::exp(-2.0 * (base[o] + scale[o] * acc[o]))) - 1.0);\n";
      break;
    case Transform::Hinge: s << each << "pr[o] = m[o] > 0.0f ? 1.0f : 0.0f;\n"; break;
    case Transform::Softmax:
      if (repro) {
        s << "    rr::softmax(m, pr, 1, " << no << ", 1, false);\n";
        break;
      }
      s << "    double mx = -std::numeric_limits<double>::infinity(), sum = 0.0;\n"
        << each << "mx = std::max(mx, static_cast<double>(m[o]));\n"
        << each << "sum += std::exp(static_cast<double>(m[o]) - mx);\n"
        << each << "pr[o] = static_cast<float>(std::exp(static_cast<double>(m[o]) - mx) / sum);\n";
      break;
    case Transform::SoftmaxClass:
      s << "    int best = 0;\n    for (int o = 1; o < " << no << "; ++o)\n      if (m[o] > m[best]) best = o;\n"
        << "    pr[0] = static_cast<float>(best);\n";
      break;
  }
  s << "  }\n}\n";
  c.compute = s.str();
  c.scratch_bytes = static_cast<size_t>(no) * (sizeof(double) + sizeof(float)) + 8;
  return c;
}

Tensor probe_rows(const Forest& f, int64_t n, uint32_t seed) {
  const int nf = f.n_features();
  std::vector<std::vector<float>> cand(static_cast<size_t>(nf));
  for (size_t i = 0; i < f.nodes().size(); ++i) {
    const FlatNode& nd = f.nodes()[i];
    if (nd.left == static_cast<int32_t>(i) && nd.right == static_cast<int32_t>(i)) continue;  // a leaf
    if ((nd.meta & Forest::kCat) != 0) continue;  // value holds a set index
    auto& c = cand[nd.meta & Forest::kFeatureMask];
    if (c.size() < 4096) c.insert(c.end(), {nd.value, -nd.value});
  }
  std::mt19937 rng(seed);
  Tensor t = Tensor::empty(DType::F32, {n, nf});
  float* x = t.data<float>();
  for (int64_t r = 0; r < n; ++r)
    for (int j = 0; j < nf; ++j) {
      const auto& c = cand[static_cast<size_t>(j)];
      const unsigned u = rng() % 100;
      float v;
      if (u < 5) {
        v = std::numeric_limits<float>::quiet_NaN();
      } else if (u < 20 || c.empty()) {
        v = static_cast<float>(rng() % 40);
      } else {
        v = c[rng() % c.size()];
        if (!std::isfinite(v)) v = 0.0f;
        if (u % 3 == 0) v = std::nextafter(v, u % 2 ? 1e30f : -1e30f);
      }
      x[r * nf + j] = v;
    }
  return t;
}

}  // namespace quiver::forest
