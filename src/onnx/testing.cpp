#include "quiver/onnx/testing.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "onnx/ops/common.hpp"
#include "quiver/core/model.hpp"
#include "quiver/core/util.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"

namespace quiver::onnx {

std::string compare_tensors(const Tensor& a, const Tensor& e, Tolerance tol) {
  if (a.dtype() != e.dtype())
    return "dtype " + std::string(dtype_name(a.dtype())) + " != expected " + std::string(dtype_name(e.dtype()));
  if (a.dims() != e.dims()) return "shape " + dims_to_string(a.dims()) + " != expected " + dims_to_string(e.dims());
  const int64_t n = a.numel();
  std::ostringstream msg;
  int64_t bad = 0, first = -1;
  double max_err = 0;
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pe = e.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      bool ok;
      if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool> || std::is_integral_v<T>) {
        ok = pa[i] == pe[i];
      } else {
        const double x = static_cast<double>(static_cast<float>(pa[i]));
        const double y = static_cast<double>(static_cast<float>(pe[i]));
        if constexpr (std::is_same_v<T, double>) {
          const double xd = pa[i], yd = pe[i];
          ok = (std::isnan(xd) && std::isnan(yd)) || xd == yd || std::fabs(xd - yd) <= tol.atol + tol.rtol * std::fabs(yd);
          if (!std::isnan(xd) && !std::isnan(yd)) max_err = std::max(max_err, std::fabs(xd - yd));
        } else {
          ok = (std::isnan(x) && std::isnan(y)) || x == y || std::fabs(x - y) <= tol.atol + tol.rtol * std::fabs(y);
          if (!std::isnan(x) && !std::isnan(y) && !std::isinf(x) && !std::isinf(y)) max_err = std::max(max_err, std::fabs(x - y));
        }
      }
      if (!ok) {
        if (first < 0) {
          first = i;
          if constexpr (std::is_same_v<T, std::string>) msg << "element " << i << ": '" << pa[i] << "' != '" << pe[i] << "'";
          else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
            msg << "element " << i << ": " << static_cast<float>(pa[i]) << " != " << static_cast<float>(pe[i]);
          else msg << "element " << i << ": " << +pa[i] << " != expected " << +pe[i];
        }
        ++bad;
      }
    }
  });
  if (!bad) return "";
  msg << " (" << bad << " of " << n << " differ, max abs error " << max_err << ")";
  return msg.str();
}

CaseResult run_test_case(const std::string& dir, Tolerance tol, const ModelLoader& load) {
  CaseResult r;
  r.name = std::filesystem::path(dir).filename().string();
  std::shared_ptr<const Model> model;
  try {
    model = load ? load(dir + "/model.onnx") : load_onnx(dir + "/model.onnx");
  } catch (const Error& e) {
    r.status = e.code() == ErrorCode::Unsupported ? CaseStatus::Skipped : CaseStatus::Failed;
    r.message = e.what();
    return r;
  }
  std::vector<std::string> sets;
  for (const auto& ent : std::filesystem::directory_iterator(dir))
    if (ent.is_directory() && ent.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(ent.path().string());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) { r.message = "no test_data_set_* folders"; return r; }
  try {
    auto state = model->make_state();
    for (const auto& set : sets) {
      const auto in_files = numbered_files(set, "input");
      const auto out_files = numbered_files(set, "output");
      const auto& mi = model->info();
      std::vector<Tensor> inputs(mi.inputs.size());
      // Inputs are in graph-input order; names, when present, must match.
      if (in_files.size() != mi.inputs.size()) {
        r.message = std::filesystem::path(set).filename().string() + ": " + std::to_string(in_files.size()) +
                    " input files for " + std::to_string(mi.inputs.size()) + " graph inputs";
        r.status = CaseStatus::Failed;
        return r;
      }
      for (size_t i = 0; i < in_files.size(); ++i) inputs[i] = read_tensor_file(in_files[i]).tensor;
      std::vector<Tensor> outputs;
      model->run(inputs, outputs, *state);
      if (outputs.size() != out_files.size()) {
        r.message = "model produced " + std::to_string(outputs.size()) + " outputs, expected " + std::to_string(out_files.size());
        return r;
      }
      for (size_t i = 0; i < out_files.size(); ++i) {
        NamedTensor exp = read_tensor_file(out_files[i]);
        std::string diff = compare_tensors(outputs[i], exp.tensor, tol);
        if (!diff.empty()) {
          r.message = std::filesystem::path(set).filename().string() + " output " + std::to_string(i) + " '" +
                      mi.outputs[i].name + "': " + diff;
          return r;
        }
      }
    }
  } catch (const Error& e) {
    // The model loaded, so the engine promised to run it: an Unsupported here is a broken kernel.
    r.status = CaseStatus::Failed;
    r.message = e.what();
    return r;
  } catch (const std::exception& e) {
    r.message = std::string("exception: ") + e.what();
    return r;
  }
  r.status = CaseStatus::Passed;
  return r;
}

std::string_view case_status_name(CaseStatus s) {
  switch (s) {
    case CaseStatus::Passed: return "pass";
    case CaseStatus::Failed: return "fail";
    case CaseStatus::Skipped: return "skip";
  }
  return "?";
}

namespace {
// pass > skip (an honest refusal) > fail (a wrong answer or a run-time error).
int rank(CaseStatus s) { return s == CaseStatus::Passed ? 2 : s == CaseStatus::Skipped ? 1 : 0; }

// One line of the list: reasons are messages, which may span lines.
std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  return out;
}
}  // namespace

Expectations read_expectations(const std::string& path) {
  Expectations ex;
  ex.file = path;
  std::istringstream in(read_file(path));
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream ls(line);
    std::string status, name;
    ls >> status >> name;
    std::string reason;
    std::getline(ls >> std::ws, reason);
    CaseExpectation e;
    if (status == "pass") e.status = CaseStatus::Passed;
    else if (status == "fail") e.status = CaseStatus::Failed;
    else if (status == "skip") e.status = CaseStatus::Skipped;
    else throw Error(ErrorCode::Parse, "expected 'pass', 'fail' or 'skip' at the start of the line, got '" + status + "'",
                     {.file = path, .offset = n});
    if (name.empty()) throw Error(ErrorCode::Parse, "a '" + status + "' line without a case name", {.file = path, .offset = n});
    if (e.status != CaseStatus::Passed && reason.empty())
      throw Error(ErrorCode::Parse, "case '" + name + "' is expected to " + status + " but no reason is given",
                  {.file = path, .offset = n});
    e.reason = reason;
    if (!ex.cases.emplace(name, std::move(e)).second)
      throw Error(ErrorCode::Parse, "case '" + name + "' is listed twice", {.file = path, .offset = n});
  }
  return ex;
}

std::string format_expectations(const std::vector<CaseResult>& results, const std::string& header) {
  std::ostringstream out;
  std::istringstream hs(header);
  std::string h;
  while (std::getline(hs, h)) out << "# " << h << "\n";
  std::vector<const CaseResult*> sorted;
  for (const auto& r : results) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const CaseResult* a, const CaseResult* b) { return a->name < b->name; });
  for (const auto* r : sorted) {
    out << case_status_name(r->status) << ' ' << r->name;
    if (r->status != CaseStatus::Passed) out << ' ' << (r->message.empty() ? std::string("(no message)") : one_line(r->message));
    out << '\n';
  }
  return out.str();
}

RatchetReport check_expectations(const std::vector<CaseResult>& results, const Expectations& expected,
                                 const std::vector<std::string>& listed_filter) {
  RatchetReport rep;
  std::set<std::string> ran;
  for (const auto& r : results) {
    ran.insert(r.name);
    auto it = expected.cases.find(r.name);
    const std::string got = std::string(case_status_name(r.status));
    if (it == expected.cases.end()) {
      rep.unlisted.push_back(r.name + ": " + got + (r.message.empty() ? "" : ": " + one_line(r.message)));
      continue;
    }
    const CaseExpectation& e = it->second;
    const std::string want = std::string(case_status_name(e.status));
    if (rank(r.status) < rank(e.status))
      rep.regressions.push_back(r.name + ": expected " + want + ", got " + got + ": " + one_line(r.message));
    else if (rank(r.status) > rank(e.status))
      rep.improvements.push_back(r.name + ": expected " + want + " (" + e.reason + "), got " + got);
  }
  const std::set<std::string> filter(listed_filter.begin(), listed_filter.end());
  for (const auto& [name, e] : expected.cases)
    if ((filter.empty() || filter.count(name)) && !ran.count(name))
      rep.missing.push_back(name + ": listed as " + std::string(case_status_name(e.status)) + " but did not run");
  return rep;
}

}  // namespace quiver::onnx
