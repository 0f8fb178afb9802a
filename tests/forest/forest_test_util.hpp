// Helpers shared by the forest tests: shared-data paths, CSV columns, and an independent reference
// evaluator that walks ForestSpec trees directly (recursive, double comparisons per split mode).
#pragma once
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "quiver/core/util.hpp"
#include "quiver/forest/csv.hpp"
#include "quiver/forest/forest.hpp"

namespace forest_test {

inline std::string shared(const std::string& rel) { return std::string(QUIVER_SHARED_DIR) + "/models/forest/" + rel; }

struct Columns {
  std::vector<std::string> names;
  std::vector<std::vector<double>> values;  // per column
  int col(const std::string& n) const {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == n) return static_cast<int>(i);
    return -1;
  }
};

inline Columns read_columns(const std::string& path) {
  auto t = quiver::forest::parse_csv(quiver::read_file(path), 1, path);
  Columns c;
  c.names = t.header;
  c.values.assign(t.header.size(), {});
  for (auto& row : t.rows)
    for (size_t k = 0; k < row.size() && k < c.names.size(); ++k) {
      float v;
      double d = quiver::forest::parse_feature_value(row[k], v) ? std::strtod(row[k].c_str(), nullptr) : NAN;
      c.values[k].push_back(d);
    }
  return c;
}

// Reference semantics of TreeArrays, evaluated with x rounded to float32 and compared in double.
inline double ref_leaf(const quiver::forest::TreeArrays& tr, const float* row, int out, bool& touched) {
  using quiver::forest::SplitMode;
  int32_t i = 0;
  while (tr.mode[i] != SplitMode::Leaf) {
    const double x = row[tr.feature[i]];
    const double t = tr.threshold[i];
    bool go_left;
    bool missing = std::isnan(x) || (!tr.zero_is_missing.empty() && tr.zero_is_missing[i] && std::fabs(x) <= 1e-35);
    if (missing && !(tr.mode[i] == SplitMode::CatIn && !std::isnan(x))) {
      go_left = tr.default_left[i];
    } else {
      switch (tr.mode[i]) {
        case SplitMode::LT: go_left = x < t; break;
        case SplitMode::LEQ: go_left = x <= t; break;
        case SplitMode::GT: go_left = x > t; break;
        case SplitMode::GTE: go_left = x >= t; break;
        case SplitMode::EQ: go_left = x == t; break;
        case SplitMode::NEQ: go_left = x != t; break;
        case SplitMode::CatIn: {
          int32_t maxc = -1;
          bool in = false;
          for (uint32_t k = 0; k < tr.cat_size[i]; ++k) maxc = std::max(maxc, tr.categories[tr.cat_begin[i] + k]);
          if (x < 0 || x >= maxc + 1) {
            go_left = !tr.cat_invalid_left.empty() && tr.cat_invalid_left[i];
            break;
          }
          for (uint32_t k = 0; k < tr.cat_size[i]; ++k) in |= tr.categories[tr.cat_begin[i] + k] == static_cast<int32_t>(x);
          go_left = in;
          break;
        }
        default: go_left = false;
      }
    }
    i = go_left ? tr.left[i] : tr.right[i];
  }
  touched = tr.leaf_width > 1 || tr.output == out;
  return tr.weight * tr.leaf_value[static_cast<size_t>(i) * tr.leaf_width + (tr.leaf_width > 1 ? out : 0)];
}

inline std::vector<double> ref_margin(const quiver::forest::ForestSpec& spec, const float* row, size_t t0, size_t t1) {
  std::vector<double> m(static_cast<size_t>(spec.n_outputs), 0.0);
  std::vector<int> cnt(m.size(), 0);
  for (size_t t = t0; t < t1; ++t)
    for (int k = 0; k < spec.n_outputs; ++k) {
      bool touched;
      double v = ref_leaf(spec.trees[t], row, k, touched);
      if (touched) { m[k] += v; cnt[k]++; }
    }
  for (size_t k = 0; k < m.size(); ++k) {
    if (spec.average && cnt[k]) m[k] /= cnt[k];
    m[k] += spec.base_margin.empty() ? 0.0 : spec.base_margin.size() == 1 ? spec.base_margin[0] : spec.base_margin[k];
  }
  return m;
}

inline bool close(double got, double want, double rtol = 1e-5, double atol = 1e-6) {
  if (std::isnan(want)) return std::isnan(got);
  return std::fabs(got - want) <= rtol * std::fabs(want) + atol;
}

}  // namespace forest_test
