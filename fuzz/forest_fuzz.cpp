// libFuzzer target for the tree-ensemble parsers (XGBoost JSON / UBJSON, LightGBM text, TMVA XML incl.
// gzip) and the CSV reader. The first byte picks the parser; the rest is the file. A parse error must
// be a quiver::Error; whatever parses is compiled and evaluated on 11 rows (incl. NaN), and then
//   row by row == batch: each row's margins from the single-row path equal the batch's (8-row and
//   remainder walks), up to the rounding of summing the same leaves in another order, and the
//   predictions equal when the margins are identical.
// Crashes, leaks, sanitizer reports, other exceptions and a broken invariant (abort) are findings.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "quiver/core/error.hpp"
#include "quiver/forest/csv.hpp"
#include "quiver/forest/forest.hpp"

using namespace quiver::forest;

namespace {

[[noreturn]] void broken(const char* what, size_t row, int k, double a, double b, double tol) {
  std::fprintf(stderr, "forest fuzz invariant broken: %s (row %zu, output %d): %.17g vs %.17g (tolerance %.3g)\n", what,
               row, k, a, b, tol);
  std::abort();
}

// Sum over trees of the largest |leaf value| a walk can add: bounds the rounding of any summation order.
double leaf_bound(const ForestSpec& spec) {
  double s = 0;
  for (const auto& t : spec.trees) {
    double m = 0;
    for (double v : t.leaf_value) m = std::max(m, std::fabs(v));
    s += m * std::fabs(t.weight);
  }
  return s;
}

bool same_value(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0] % 6;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  ForestSpec spec;
  try {
    if (sel == 5) {
      auto t = parse_csv(body, -1, "fuzz.csv");
      auto x = csv_to_features(t, 3, {}, nullptr, "fuzz.csv");
      (void)x;
      return 0;
    }
    static const Format formats[] = {Format::XGBoostJson, Format::XGBoostUbj, Format::LightGBM, Format::TmvaXml, Format::Auto};
    spec = parse_forest(body, formats[sel], "fuzz.model");
  } catch (const quiver::Error&) {
    return 0;
  }
  if (spec.n_features > 4096) return 0;  // keep evaluation cheap
  bool built = false;
  try {
    const Forest f = Forest::build(spec, "fuzz.model");
    built = true;
    const size_t nf = static_cast<size_t>(std::max(f.n_features(), 1));
    const size_t no = static_cast<size_t>(f.n_outputs()), np = static_cast<size_t>(f.n_prediction_columns());
    constexpr size_t kRows = 11;  // one group of eight rows walked together, and three walked alone
    std::vector<float> rows(kRows * nf);
    for (size_t i = 0; i < rows.size(); ++i)
      rows[i] = (i % 5 == 0) ? NAN : static_cast<float>(static_cast<int>(i % 7) - 2) * 0.75f;
    std::vector<float> m(kRows * no), p(kRows * np);
    f.predict_both(rows.data(), kRows, m.data(), p.data());
    const double bound = leaf_bound(spec);
    const double n_trees = static_cast<double>(std::max<size_t>(spec.trees.size(), 1));
    std::vector<float> mr(no), pr(np);
    for (size_t r = 0; r < kRows; ++r) {
      const float* row = rows.data() + r * nf;
      f.predict_row(row, mr.data(), true);
      f.predict_row(row, pr.data(), false);
      bool identical = true;
      for (size_t k = 0; k < no; ++k) {
        const float a = m[r * no + k], b = mr[k];
        if (same_value(a, b)) continue;
        identical = false;
        // Summing the same leaves in another order: n * eps(double) * sum|leaves|, plus the float
        // rounding of the result.
        const double tol = 4.0 * n_trees * 1.2e-16 * bound + 2.4e-7 * std::max(std::fabs(a), std::fabs(b));
        if (std::isnan(a) != std::isnan(b) || !(std::fabs(static_cast<double>(a) - b) <= tol))
          broken("single-row margin differs from the batch", r, static_cast<int>(k), a, b, tol);
      }
      // Same margins, same predictions: exactly when the transform reads the float margins; within
      // the margin's last bit when it reads the double sums (sigmoid, exp, TMVA).
      const bool from_double = spec.transform == Transform::Sigmoid || spec.transform == Transform::Exp ||
                               spec.transform == Transform::TmvaGrad;
      for (size_t k = 0; identical && k < np; ++k) {
        const float a = p[r * np + k], b = pr[k];
        if (same_value(a, b)) continue;
        const double mk = std::fabs(static_cast<double>(mr[std::min(k, no - 1)]));
        const double big = std::max(std::fabs(static_cast<double>(a)), std::fabs(static_cast<double>(b)));
        const double tol =
            from_double ? (std::fabs(spec.sigmoid_alpha) + 4.0) * (mk * 1.2e-7 + 1e-38) * std::max(1.0, big) + 2.4e-7 * big : 0.0;
        const bool both_huge = std::min(std::fabs(a), std::fabs(b)) > 1e38f;  // exp() at the float limit
        if (std::isnan(a) != std::isnan(b) || !(both_huge || std::fabs(static_cast<double>(a) - b) <= tol))
          broken("single-row prediction differs from the batch (same margins)", r, static_cast<int>(k), a, b, tol);
      }
      // The per-event fast path (output 0).
      const float fast = f.predict_row(row, true);
      if (!same_value(fast, mr[0])) {
        const double tol = 4.0 * n_trees * 1.2e-16 * bound + 2.4e-7 * std::max(std::fabs(fast), std::fabs(mr[0]));
        if (std::isnan(fast) != std::isnan(mr[0]) || !(std::fabs(static_cast<double>(fast) - mr[0]) <= tol))
          broken("fast single-row margin differs", r, 0, fast, mr[0], tol);
      }
    }
  } catch (const quiver::Error& e) {
    if (!built) return 0;  // a spec the compiler refuses, with a typed error
    std::fprintf(stderr, "forest fuzz: evaluating a compiled forest threw: %s\n", e.what());
    std::abort();
  }
  return 0;
}
