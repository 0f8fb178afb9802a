#include "quiver/forest/csv.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>

#include "quiver/core/error.hpp"
#include "quiver/core/util.hpp"
#include "quiver/forest/forest.hpp"

namespace quiver::forest {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

bool is_missing_token(std::string_view s) {
  s = trim(s);
  return s.empty() || s == "NA" || s == "N/A" || ieq(s, "nan") || ieq(s, "null") || s == "?" || ieq(s, "none");
}

}  // namespace

bool parse_feature_value(std::string_view s, float& out) {
  s = trim(s);
  if (is_missing_token(s)) {
    out = std::numeric_limits<float>::quiet_NaN();
    return true;
  }
  if (ieq(s, "true")) { out = 1.0f; return true; }
  if (ieq(s, "false")) { out = 0.0f; return true; }
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double d = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), d);
  if (r.ec == std::errc::result_out_of_range) {
    d = (!s.empty() && s.front() == '-') ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  } else if (r.ec != std::errc() || r.ptr != s.data() + s.size()) {
    return false;
  }
  out = static_cast<float>(d);
  return true;
}

CsvTable parse_csv(std::string_view text, int has_header, const std::string& source) {
  CsvTable t;
  std::vector<std::vector<std::string>> records;
  std::vector<int64_t> lines;
  size_t i = 0;
  int64_t line = 1;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // UTF-8 BOM
  while (i < text.size()) {
    std::vector<std::string> rec;
    std::string field;
    const int64_t start_line = line;
    bool quoted = false, any = false;
    while (i < text.size()) {
      char ch = text[i];
      if (quoted) {
        if (ch == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') { field.push_back('"'); i += 2; continue; }
          quoted = false;
          ++i;
          continue;
        }
        if (ch == '\n') ++line;
        field.push_back(ch);
        ++i;
        continue;
      }
      if (ch == '"' && trim(field).empty()) { field.clear(); quoted = true; any = true; ++i; continue; }
      if (ch == ',') { rec.push_back(std::move(field)); field.clear(); any = true; ++i; continue; }
      if (ch == '\r') { ++i; continue; }
      if (ch == '\n') { ++i; ++line; break; }
      field.push_back(ch);
      any = true;
      ++i;
    }
    if (quoted) throw_error(ErrorCode::InvalidArgument, "unterminated quoted field", {"", "", "", source, start_line});
    if (!any && field.empty()) continue;  // blank line
    rec.push_back(std::move(field));
    records.push_back(std::move(rec));
    lines.push_back(start_line);
  }
  if (records.empty()) return t;
  bool header = has_header == 1;
  if (has_header < 0) {
    for (const auto& f : records[0]) {
      float v;
      if (!parse_feature_value(f, v)) { header = true; break; }
    }
  }
  size_t first = 0;
  if (header) {
    for (auto& h : records[0]) t.header.emplace_back(trim(h));
    first = 1;
  }
  for (size_t r = first; r < records.size(); ++r) {
    t.rows.push_back(std::move(records[r]));
    t.line.push_back(lines[r]);
  }
  return t;
}

std::vector<float> csv_to_features(const CsvTable& table, int n_features, const std::vector<std::string>& feature_names,
                                   const Forest* forest, const std::string& source) {
  const size_t nf = static_cast<size_t>(n_features);
  // column index of each feature
  std::vector<size_t> col(nf);
  if (table.header.empty()) {
    for (size_t f = 0; f < nf; ++f) col[f] = f;
  } else {
    bool by_name = !feature_names.empty();
    if (by_name) {
      for (size_t f = 0; f < nf; ++f) {
        size_t c = 0;
        while (c < table.header.size() && table.header[c] != feature_names[f]) ++c;
        if (c == table.header.size())
          throw_error(ErrorCode::InvalidArgument, "CSV has no column named '" + feature_names[f] + "' (feature " +
                                                      std::to_string(f) + " of the model)", {"", "", feature_names[f], source, 1});
        col[f] = c;
      }
    } else if (table.header.size() == nf) {
      for (size_t f = 0; f < nf; ++f) col[f] = f;
    } else {
      // XGBoost default names f0, f1, ...
      for (size_t f = 0; f < nf; ++f) {
        std::string want = "f" + std::to_string(f);
        size_t c = 0;
        while (c < table.header.size() && table.header[c] != want) ++c;
        if (c == table.header.size())
          throw_error(ErrorCode::InvalidArgument, "the model has no feature names and the CSV header has " +
                                                      std::to_string(table.header.size()) + " columns for " +
                                                      std::to_string(nf) + " features (and no column '" + want + "')",
                      {"", "", "", source, 1});
        col[f] = c;
      }
    }
  }
  std::vector<float> out(table.rows.size() * nf);
  for (size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    if (table.header.empty() && row.size() != nf)
      throw_error(ErrorCode::InvalidArgument, "row has " + std::to_string(row.size()) + " fields, the model expects " +
                                                  std::to_string(nf) + " features", {"", "", "", source, table.line[r]});
    if (!table.header.empty() && row.size() != table.header.size())
      throw_error(ErrorCode::InvalidArgument, "row has " + std::to_string(row.size()) + " fields, the header has " +
                                                  std::to_string(table.header.size()), {"", "", "", source, table.line[r]});
    for (size_t f = 0; f < nf; ++f) {
      const std::string& s = row[col[f]];
      float v;
      if (forest && forest->has_category_names(static_cast<int>(f)) && !is_missing_token(s)) {
        int code = forest->category_code(static_cast<int>(f), trim(s));
        v = code >= 0 ? static_cast<float>(code) : std::numeric_limits<float>::quiet_NaN();
      } else if (!parse_feature_value(s, v)) {
        std::string cname = table.header.empty() ? "column " + std::to_string(col[f] + 1) : table.header[col[f]];
        throw_error(ErrorCode::InvalidArgument, "value '" + s.substr(0, 40) + "' in column '" + cname + "' is not a number",
                    {"", "", cname, source, table.line[r]});
      }
      out[r * nf + f] = v;
    }
  }
  return out;
}

size_t infer_csv(const Model& model, const std::string& csv_in, const std::string& csv_out, bool margin, std::ostream& os) {
  const ModelInfo& mi = model.info();
  if (mi.inputs.size() != 1 || mi.inputs[0].dtype != DType::F32 || mi.inputs[0].shape.size() != 2 ||
      !mi.inputs[0].shape[1].is_fixed())
    throw_error(ErrorCode::Unsupported, "CSV input needs a model with one F32 [batch, n_features] input", {mi.name});
  const int nf = static_cast<int>(mi.inputs[0].shape[1].value);
  const auto* fm = dynamic_cast<const ForestModel*>(&model);
  const Forest* forest = fm ? &fm->forest() : nullptr;
  std::vector<std::string> names = forest ? forest->feature_names() : std::vector<std::string>{};

  std::string text = read_file(csv_in);
  CsvTable table = parse_csv(text, -1, csv_in);
  std::vector<float> x = csv_to_features(table, nf, names, forest, csv_in);
  const int64_t n = static_cast<int64_t>(table.rows.size());

  size_t oi = 0;
  std::string base = mi.outputs.empty() ? "output" : mi.outputs[0].name;
  if (margin) {
    size_t k = 0;
    while (k < mi.outputs.size() && mi.outputs[k].name != "margin") ++k;
    if (k == mi.outputs.size()) throw_error(ErrorCode::Unsupported, "--margin: the model has no 'margin' output", {mi.name});
    oi = k;
    base = "margin";
  }
  const int64_t dims[2] = {n, nf};
  Tensor in = Tensor::view(DType::F32, dims, x.data());
  std::vector<Tensor> inputs{in};
  std::vector<Tensor> outs = model.run_once(inputs);
  if (oi >= outs.size()) throw_error(ErrorCode::Internal, "model returned too few outputs", {mi.name});
  const Tensor& o = outs[oi];
  const int64_t cols = o.rank() >= 2 ? o.numel() / std::max<int64_t>(o.dim(0), 1) : 1;

  std::ofstream fout;
  std::ostream* w = &os;
  if (!csv_out.empty()) {
    fout.open(csv_out, std::ios::binary);
    if (!fout) throw_error(ErrorCode::NotFound, "cannot write output file", {"", "", "", csv_out});
    w = &fout;
  }
  for (int64_t k = 0; k < cols; ++k) *w << (k ? "," : "") << base << (cols > 1 ? "_" + std::to_string(k) : "");
  *w << "\n";
  *w << std::setprecision(9);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t idx = r * cols + k;
      double v = 0;
      switch (o.dtype()) {
        case DType::F32: v = o.data<float>()[idx]; break;
        case DType::F64: v = o.data<double>()[idx]; break;
        case DType::I64: v = static_cast<double>(o.data<int64_t>()[idx]); break;
        case DType::I32: v = o.data<int32_t>()[idx]; break;
        default: throw_error(ErrorCode::Unsupported, "output dtype not supported in CSV", {mi.name, "", mi.outputs[oi].name});
      }
      *w << (k ? "," : "") << v;
    }
    *w << "\n";
  }
  if (!csv_out.empty() && !fout) throw_error(ErrorCode::Internal, "error writing output file", {"", "", "", csv_out});
  return static_cast<size_t>(n);
}

}  // namespace quiver::forest
