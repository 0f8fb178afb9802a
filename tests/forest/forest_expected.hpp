// The expected-prediction files of the shared XGBoost manifests (../shared/models/forest/xgboost/*/cases.json)
// checked against margins and predictions from any evaluator: the forest engine (test_forest_models)
// or a compiled library (tests/aot).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "forest_test_util.hpp"

namespace forest_test {

struct Outcome {
  size_t checked = 0;
  double max_rel = 0;
  std::string worst;
};

inline void compare(const std::string& what, double got, double want, Outcome& o, double rtol = 1e-5, double atol = 1e-6) {
  ++o.checked;
  if (std::isfinite(want) && std::fabs(want) >= 1e-3 && std::fabs(got - want) / std::fabs(want) > o.max_rel) {
    o.max_rel = std::fabs(got - want) / std::fabs(want);
    o.worst = what + " got " + std::to_string(got) + " want " + std::to_string(want);
  }
  EXPECT_TRUE(close(got, want, rtol, atol)) << what << ": got " << got << ", expected " << want;
}

inline bool is_classifier(const std::string& obj) {
  return obj == "binary:logistic" || obj == "binary:hinge" || obj == "multi:softprob" || obj == "multi:softmax";
}

// Every column of expected file `ex` of case `cs` (and its margin file) against `margin` (n x no) and
// `pred` (n x np) computed for the case's input rows.
inline void check_expected_columns(const std::string& dir, const nlohmann::json& cs, const nlohmann::json& ex, size_t n, int no,
                                   int np, const std::vector<float>& margin, const std::vector<float>& pred, Outcome& o) {
  const std::string obj = cs["objective"].get<std::string>();
  // margins
  if (ex.contains("margin") && ex["margin"].is_object()) {
    Columns mc = read_columns(dir + "/" + ex["margin"]["file"].get<std::string>());
    ASSERT_EQ(mc.values[0].size(), n);
    for (int k = 0; k < no; ++k) {
      int c = no == 1 ? mc.col("margin") : mc.col("margin_" + std::to_string(k));
      ASSERT_GE(c, 0) << "margin column for output " << k;
      for (size_t r = 0; r < n; ++r) compare("margin row " + std::to_string(r), margin[r * no + k], mc.values[c][r], o);
    }
  }
  Columns ec = read_columns(dir + "/" + ex["file"].get<std::string>());
  ASSERT_EQ(ec.values.at(0).size(), n);
  for (size_t c = 0; c < ec.names.size(); ++c) {
    const std::string& name = ec.names[c];
    for (size_t r = 0; r < n; ++r) {
      const double want = ec.values[c][r];
      const std::string w = name + " row " + std::to_string(r);
      if (name == "prediction") {
        compare(w, pred[r * np], want, o);
      } else if (name.rfind("prediction_", 0) == 0) {
        compare(w, pred[r * np + std::stoi(name.substr(11))], want, o);
      } else if (name == "margin") {
        compare(w, margin[r * no], want, o);
      } else if (name.rfind("margin_", 0) == 0) {
        compare(w, margin[r * no + std::stoi(name.substr(7))], want, o);
      } else if (name == "_target" || name == "_target1" || name == "_target2") {
        int out = name == "_target2" ? 1 : 0;
        if (!is_classifier(obj)) {
          compare(w, pred[r * np + out], want, o);
        } else if (obj == "multi:softprob") {
          int best = 0;
          for (int k = 1; k < no; ++k) if (pred[r * np + k] > pred[r * np + best]) best = k;
          EXPECT_EQ(best, static_cast<int>(want)) << w;
        } else {  // binary: class = p > 0.5 (hinge: the prediction is the class)
          double p = pred[r * np + out];
          if (std::fabs(p - 0.5) > 1e-5) {
            EXPECT_EQ(p > 0.5 ? 1 : 0, static_cast<int>(want)) << w;
          }
        }
      } else if (name.rfind("probability(", 0) == 0) {
        // probability(K) or probability(_targetJ, K)
        std::string inner = name.substr(12, name.size() - 13);
        int out = 0;
        if (inner.rfind("_target", 0) == 0) {
          out = inner[7] == '2' ? 1 : 0;
          inner = inner.substr(inner.find(',') + 1);
        }
        int k = std::stoi(inner);
        double got;
        if (obj == "multi:softprob") got = pred[r * np + k];
        // the expected 1 - p was computed from a float32 p (cancellation for p near 1): same here
        else got = k == 1 ? pred[r * np + out] : 1.0 - pred[r * np + out];
        compare(w, got, want, o);
      } else {
        ADD_FAILURE() << "unknown expected column " << name;
      }
    }
  }
}

}  // namespace forest_test
