// Reproducible numerics for tree ensembles (numerics=reproducible, issue #15): for every shared forest
// model, a row's outputs have the same bits evaluated alone (predict_row), in a batch at any position
// (blocked, eight rows at a time or in the remainder), and on every ISA this CPU runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/repro/repro.hpp"
#include "forest_test_util.hpp"
#include "quiver/forest/forest.hpp"

using namespace quiver;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> shared_forest_models() {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(forest_test::shared(""))) {
    if (!e.is_regular_file()) continue;
    const std::string p = e.path().string(), n = e.path().filename().string();
    const bool model = (n.ends_with(".json") && n != "cases.json") || n.ends_with(".ubj") || n.ends_with("_model.txt") ||
                       n.ends_with(".weights.xml.gz");
    if (model) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<repro::Isa> isas() {
  std::vector<repro::Isa> v;
  for (repro::Isa i : {repro::Isa::Avx512, repro::Isa::Avx2, repro::Isa::Baseline}) {
    if (repro::cpu_has_isa(i)) v.push_back(i);
    else std::printf("[ NOTE     ] ISA %s: this CPU does not run it, not checked here\n", repro::isa_name(i));
  }
  return v;
}

}  // namespace

TEST(ForestReproducible, SameBitsPerRowBlockedAtAnyPositionAndOnEveryIsa) {
  const auto models = shared_forest_models();
  ASSERT_GE(models.size(), 10u);
  size_t checked = 0;
  for (const auto& path : models) {
    SCOPED_TRACE(path);
    std::shared_ptr<const forest::ForestModel> def;
    try {
      def = forest::ForestModel::load(path);
    } catch (const Error& e) {
      continue;  // files the loader refuses (other tests cover them)
    }
    const forest::Forest& fd = def->forest();
    const size_t nf = static_cast<size_t>(fd.n_features()), np = static_cast<size_t>(fd.n_prediction_columns());
    // 37 rows (four groups of eight and a remainder of five), NaNs as missing values.
    const size_t n = 37;
    std::mt19937 rng(42);
    std::normal_distribution<float> g(0.0f, 3.0f);
    std::vector<float> rows(n * nf);
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = i % 11 == 3 ? NAN : g(rng);
    std::vector<float> ref_default(n * np);
    fd.predict(rows.data(), n, ref_default.data());

    std::vector<float> first;
    for (repro::Isa isa : isas()) {
      SCOPED_TRACE(repro::isa_name(isa));
      LoadOptions o;
      o.params["numerics"] = "reproducible";
      o.params["isa"] = repro::isa_name(isa);
      auto m = forest::ForestModel::load(path, o);
      const forest::Forest& f = m->forest();
      ASSERT_NE(f.reproducible(), nullptr);
      for (bool margin : {false, true}) {
        const size_t cols = margin ? static_cast<size_t>(f.n_outputs()) : np;
        std::vector<float> blocked(n * cols);
        f.predict(rows.data(), n, blocked.data(), margin);
        // Each row alone, and the rows shifted by one position (a row moves between the groups of
        // eight and the remainder).
        for (size_t r = 0; r < n; ++r) {
          std::vector<float> one(cols);
          f.predict_row(rows.data() + r * nf, one.data(), margin);
          ASSERT_EQ(std::memcmp(one.data(), blocked.data() + r * cols, cols * 4), 0) << "row " << r << " alone, margin " << margin;
          if (cols == 1 && !margin) {
            const float s = f.predict_row(rows.data() + r * nf, false);
            ASSERT_EQ(std::memcmp(&s, blocked.data() + r, 4), 0) << "row " << r << " (scalar predict_row)";
          }
        }
        std::vector<float> shifted(n * nf), out2((n - 1) * cols);
        std::memcpy(shifted.data(), rows.data() + nf, (n - 1) * nf * 4);
        f.predict(shifted.data(), n - 1, out2.data(), margin);
        ASSERT_EQ(std::memcmp(out2.data(), blocked.data() + cols, (n - 1) * cols * 4), 0) << "shifted batch, margin " << margin;
        if (!margin) {
          if (first.empty()) first = blocked;
          else ASSERT_EQ(std::memcmp(first.data(), blocked.data(), blocked.size() * 4), 0) << "ISA differs";
          // Still the model's answer: close to the default mode.
          for (size_t i = 0; i < blocked.size(); ++i) {
            if (std::isnan(ref_default[i])) continue;
            ASSERT_NEAR(blocked[i], ref_default[i], 1e-5 + 1e-4 * std::fabs(ref_default[i])) << "element " << i;
          }
        }
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 10u);
  std::printf("[ NOTE     ] %zu forest models checked\n", checked);
}
