// Comparison and conformance helpers shared by `quiver onnx-test`, `quiver infer --compare` and tests.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"
#include "quiver/core/tensor.hpp"

namespace quiver::onnx {

struct Tolerance {
  double rtol = 1e-3;
  double atol = 1e-7;
};

// Empty string when equal within |a-e| <= atol + rtol*|e| (NaN == NaN, exact for ints/bools/strings);
// otherwise a description of the first mismatch and the max error.
std::string compare_tensors(const Tensor& actual, const Tensor& expected, Tolerance tol);

enum class CaseStatus { Passed, Failed, Skipped };
struct CaseResult {
  std::string name;
  CaseStatus status = CaseStatus::Failed;
  std::string message;  // why it failed / which op is unsupported
};

// Runs one ONNX backend test case folder (model.onnx + test_data_set_*/), the model loaded by `load`
// (default: the CPU engine, load_onnx; `quiver onnx-test --device` passes the backend layer's loader).
// Skipped only when the loader refuses the model as Unsupported; any error while running
// (Unsupported included) is a failure, so kernels that start throwing cannot turn passes into skips.
using ModelLoader = std::function<std::shared_ptr<const Model>(const std::string& path)>;
CaseResult run_test_case(const std::string& dir, Tolerance tol = {}, const ModelLoader& load = {});

// ---- Conformance ratchet: a committed list of what each case does today ----
// File format, one case per line ('#' comments, blank lines ignored):
//   pass NAME
//   fail NAME REASON      (an expected failure and why)
//   skip NAME REASON      (refused at load, e.g. an unsupported operator)
std::string_view case_status_name(CaseStatus s);  // "pass" | "fail" | "skip"

struct CaseExpectation {
  CaseStatus status = CaseStatus::Passed;
  std::string reason;
};
struct Expectations {
  std::string file;                               // where they were read from (for messages)
  std::map<std::string, CaseExpectation> cases;  // by case folder name
};

// Throws Error(Parse, ..., {file, line}) on a malformed or duplicate line.
Expectations read_expectations(const std::string& path);
// The file text for `results` (sorted by name, reasons on one line); `header` lines become comments.
std::string format_expectations(const std::vector<CaseResult>& results, const std::string& header);

// What changed against the list. Worse is pass -> skip/fail and skip -> fail; better is the reverse.
struct RatchetReport {
  std::vector<std::string> regressions;   // "NAME: expected pass, got fail: MESSAGE"
  std::vector<std::string> improvements;  // "NAME: expected fail, got pass"
  std::vector<std::string> unlisted;      // ran, but the list does not name it
  std::vector<std::string> missing;       // listed, but not among the cases that ran
  bool ok() const { return regressions.empty() && unlisted.empty() && missing.empty(); }
};
// `listed_filter`: when non-empty, only these listed names are expected to have run (a --cases run).
RatchetReport check_expectations(const std::vector<CaseResult>& results, const Expectations& expected,
                                 const std::vector<std::string>& listed_filter = {});

}  // namespace quiver::onnx
