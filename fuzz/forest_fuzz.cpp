// libFuzzer target for the tree-ensemble parsers (XGBoost JSON / UBJSON, LightGBM text, TMVA XML incl.
// gzip) and the CSV reader. The first byte picks the parser; the rest is the file. Whatever parses is
// compiled and evaluated on a few rows (incl. NaN). Any quiver::Error is fine; crashes, leaks,
// sanitizer reports and other exceptions are bugs.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "quiver/core/error.hpp"
#include "quiver/forest/csv.hpp"
#include "quiver/forest/forest.hpp"

using namespace quiver::forest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0] % 6;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if (sel == 5) {
      auto t = parse_csv(body, -1, "fuzz.csv");
      auto x = csv_to_features(t, 3, {}, nullptr, "fuzz.csv");
      (void)x;
      return 0;
    }
    static const Format formats[] = {Format::XGBoostJson, Format::XGBoostUbj, Format::LightGBM, Format::TmvaXml, Format::Auto};
    ForestSpec spec = parse_forest(body, formats[sel], "fuzz.model");
    if (spec.n_features > 4096) return 0;  // keep evaluation cheap; parsing was the point
    Forest f = Forest::build(spec, "fuzz.model");
    const size_t nf = static_cast<size_t>(f.n_features());
    std::vector<float> rows(4 * std::max<size_t>(nf, 1));
    for (size_t i = 0; i < rows.size(); ++i)
      rows[i] = (i % 5 == 0) ? NAN : static_cast<float>(static_cast<int>(i % 7) - 2) * 0.75f;
    std::vector<float> m(4 * static_cast<size_t>(f.n_outputs())), p(4 * static_cast<size_t>(f.n_prediction_columns()));
    f.predict_both(rows.data(), 4, m.data(), p.data());
    volatile float sink = f.predict_row(rows.data(), false);
    (void)sink;
  } catch (const quiver::Error&) {
  }
  return 0;
}
