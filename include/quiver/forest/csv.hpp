// CSV input for tree models (and any model with one F32 [batch, n_features] input):
// `quiver infer MODEL --csv INPUT.csv [--output OUT.csv] [--margin]`.
//
// Input: a header row of feature names (columns matched by name, others ignored, any order) or no
// header (positional: every row must have exactly n_features fields). Missing values: empty, NA,
// NaN, nan, null, ?. TRUE/FALSE read as 1/0. For a forest whose model stores category names
// (XGBoost >= 3.1 `cats`), a categorical column's strings are mapped to their codes (an unknown
// category reads as missing).
#pragma once
#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver::forest {

class Forest;

struct CsvTable {
  std::vector<std::string> header;               // empty when the file has no header row
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> line;                     // 1-based source line of each row
};
// RFC-4180-ish: comma separated, double quotes for fields with commas/quotes, CRLF tolerated, blank lines skipped.
// `has_header`: -1 = detect (first row has a field that is not a number / missing token), 0 = no, 1 = yes.
CsvTable parse_csv(std::string_view text, int has_header = -1, const std::string& source = "");

// Row-major float matrix (n_rows x n_features) for a model. `feature_names` (may be empty) and
// `forest` (may be null; used for category names) decide the column mapping. Throws
// InvalidArgument naming the file, line and column on a bad value or missing column.
std::vector<float> csv_to_features(const CsvTable& table, int n_features, const std::vector<std::string>& feature_names,
                                   const Forest* forest, const std::string& source);

// Parses a value as the engine reads it (missing tokens -> NaN, TRUE/FALSE -> 1/0, numbers -> float).
// Returns false when it is none of these.
bool parse_feature_value(std::string_view s, float& out);

// The CLI's CSV mode: reads csv_in, runs the model, writes a CSV (header + one row per input row) to
// csv_out (or to `out` when csv_out is empty). margin=true writes the "margin" output (forest models),
// else "prediction". Returns the number of rows.
size_t infer_csv(const Model& model, const std::string& csv_in, const std::string& csv_out, bool margin, std::ostream& out);

}  // namespace quiver::forest
