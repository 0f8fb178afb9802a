// ONNX backend node suite (onnx 1.22.0): every HEP core case must pass (one test each). The whole
// suite runs against the committed ratchet node_suite.expect (cli_onnx_test_node_suite); the ratchet's
// own rules are tested here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "quiver/core/error.hpp"
#include "quiver/onnx/testing.hpp"

namespace fs = std::filesystem;
using namespace quiver::onnx;

namespace {
const std::string kSuite = std::string(QUIVER_SHARED_DIR) + "/conformance/onnx-node/";

std::vector<std::string> core_cases() {
  std::vector<std::string> out;
  std::ifstream f(kSuite + "HEP_CORE_CASES.txt");
  std::string line;
  while (std::getline(f, line))
    if (!line.empty() && line[0] != '#') out.push_back(line);
  return out;
}
}  // namespace

class HepCoreCase : public ::testing::TestWithParam<std::string> {};

TEST_P(HepCoreCase, Passes) {
  auto r = run_test_case(kSuite + "node/" + GetParam());
  EXPECT_EQ(r.status, CaseStatus::Passed) << r.message;
}

INSTANTIATE_TEST_SUITE_P(Onnx, HepCoreCase, ::testing::ValuesIn(core_cases()),
                         [](const auto& info) { return info.param; });

namespace {
CaseResult result(const std::string& name, CaseStatus s, const std::string& msg = "") { return {name, s, msg}; }

std::string write_list(const std::string& text) {
  const std::string path = (fs::temp_directory_path() / ("quiver_expect_" + std::to_string(::getpid()) + ".txt")).string();
  std::ofstream(path) << text;
  return path;
}

bool mentions(const std::vector<std::string>& lines, const std::string& what) {
  for (const auto& l : lines)
    if (l.find(what) != std::string::npos) return true;
  return false;
}
}  // namespace

TEST(Ratchet, WorseFailsByNameBetterIsReported) {
  const std::string path = write_list(
      "# comment\n\npass test_a\npass test_b\nskip test_c unsupported op Foo\nfail test_d wrong answer\n"
      "skip test_e unsupported op Bar\npass test_gone\n");
  const Expectations ex = read_expectations(path);
  fs::remove(path);
  ASSERT_EQ(ex.cases.size(), 6u);
  EXPECT_EQ(ex.cases.at("test_c").reason, "unsupported op Foo");
  const std::vector<CaseResult> results = {
      result("test_a", CaseStatus::Passed),
      result("test_b", CaseStatus::Skipped, "kernel threw"),  // pass -> skip: worse
      result("test_c", CaseStatus::Failed, "now loads, wrong"),  // skip -> fail: worse
      result("test_d", CaseStatus::Passed),                      // fail -> pass: better
      result("test_e", CaseStatus::Skipped, "still"),            // same
      result("test_new", CaseStatus::Passed),                    // not listed
  };
  const auto rep = check_expectations(results, ex);
  EXPECT_FALSE(rep.ok());
  ASSERT_EQ(rep.regressions.size(), 2u);
  EXPECT_TRUE(mentions(rep.regressions, "test_b: expected pass, got skip: kernel threw"));
  EXPECT_TRUE(mentions(rep.regressions, "test_c: expected skip, got fail"));
  ASSERT_EQ(rep.improvements.size(), 1u);
  EXPECT_TRUE(mentions(rep.improvements, "test_d: expected fail (wrong answer), got pass"));
  ASSERT_EQ(rep.unlisted.size(), 1u);
  EXPECT_TRUE(mentions(rep.unlisted, "test_new"));
  ASSERT_EQ(rep.missing.size(), 1u);
  EXPECT_TRUE(mentions(rep.missing, "test_gone"));
  // A --cases run: only the selected listed cases must have run.
  const auto sub = check_expectations({result("test_a", CaseStatus::Passed)}, ex, {"test_a"});
  EXPECT_TRUE(sub.ok());
  EXPECT_TRUE(sub.missing.empty());
  // Only improvements: passes.
  const auto better = check_expectations({result("test_d", CaseStatus::Skipped, "refused")}, ex, {"test_d"});
  EXPECT_TRUE(better.ok());
  EXPECT_EQ(better.improvements.size(), 1u);
}

TEST(Ratchet, RecordedListReadsBackAsTheSameExpectations) {
  const std::vector<CaseResult> results = {result("test_z", CaseStatus::Failed, "line one\nline two"),
                                           result("test_a", CaseStatus::Passed),
                                           result("test_m", CaseStatus::Skipped, "unsupported")};
  const std::string text = format_expectations(results, "header");
  EXPECT_EQ(text, "# header\npass test_a\nskip test_m unsupported\nfail test_z line one line two\n");
  const std::string path = write_list(text);
  const Expectations ex = read_expectations(path);
  fs::remove(path);
  EXPECT_TRUE(check_expectations(results, ex).ok());
  EXPECT_TRUE(check_expectations(results, ex).improvements.empty());
}

TEST(Ratchet, MalformedListsNameFileAndLine) {
  const std::pair<const char*, const char*> bad[] = {
      {"pass test_a\npasses test_b\n", "got 'passes'"},
      {"pass test_a\nfail test_b\n", "no reason"},
      {"pass test_a\npass test_a\n", "listed twice"},
  };
  for (const auto& [text, why] : bad) {
    const std::string path = write_list(text);
    try {
      read_expectations(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const quiver::Error& e) {
      EXPECT_EQ(e.code(), quiver::ErrorCode::Parse);
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      EXPECT_EQ(e.where().file, path);
      EXPECT_EQ(e.where().offset, 2);
    }
    fs::remove(path);
  }
}
