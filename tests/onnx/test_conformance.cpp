// ONNX backend node suite (onnx 1.22.0): every HEP core case must pass (one test each), and the
// whole suite (node/) must pass at >= 60%.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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

TEST(NodeSuite, AtLeastSixtyPercentPass) {
  int passed = 0, failed = 0, skipped = 0;
  for (const auto& e : fs::directory_iterator(kSuite + "node")) {
    auto r = run_test_case(e.path().string());
    (r.status == CaseStatus::Passed ? passed : r.status == CaseStatus::Failed ? failed : skipped)++;
  }
  const int total = passed + failed + skipped;
  std::printf("node suite: %d passed, %d failed, %d skipped (%.1f%%)\n", passed, failed, skipped, 100.0 * passed / total);
  EXPECT_GE(total, 1700);
  EXPECT_GE(passed, total * 6 / 10);
}
