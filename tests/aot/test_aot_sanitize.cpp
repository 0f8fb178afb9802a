// The generated code under the sanitizers, in every build: a model's generated sources are compiled
// together with a small driver with -fsanitize=address,undefined (UBSan fatal) and, separately, with
// -fsanitize=thread, and run. The driver uses only the generated C ABI: one single-thread reference
// run, then three threads calling the same code at once, each with its own workspace and outputs, which
// must give the reference bits. Any sanitizer report fails the run. (In a -DQUIVER_SANITIZE build,
// test_aot / test_aot_forest additionally build the libraries they load with the build's sanitizers,
// so the loader and the generated code are checked together.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "aot_test_util.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/forest/forest.hpp"

namespace fs = std::filesystem;
using namespace quiver;

namespace {

fs::path out_root() { return fs::path(QUIVER_BINARY_DIR) / "tests" / "aot" / "out" / "sanitize"; }

// A driver for the compiled model `r`: dims values `dims` (ABI order), float inputs of `in_elems`
// elements each.
std::string driver(const aot::CompileResult& r, const std::vector<int64_t>& dims, const std::vector<int64_t>& in_elems,
                   size_t n_outputs) {
  const std::string n = r.name;
  std::ostringstream d;
  d << "#include \"" << n << ".hpp\"\n#include <cstdio>\n#include <cstring>\n#include <thread>\n#include <vector>\n\n"
    << "int main() {\n  const int64_t dims[] = {";
  for (size_t i = 0; i < dims.size(); ++i) d << (i ? ", " : "") << dims[i];
  if (dims.empty()) d << "0";
  d << "};\n  const size_t in_elems[] = {";
  for (size_t i = 0; i < in_elems.size(); ++i) d << (i ? ", " : "") << in_elems[i];
  d << "};\n  const size_t ni = " << in_elems.size() << ", no = " << n_outputs << ";\n"
    << "  char err[512];\n"
    << "  std::vector<std::vector<float>> in(ni);\n  std::vector<const void*> inp(ni);\n"
    << "  unsigned s = 12345;\n"
    << "  for (size_t i = 0; i < ni; ++i) {\n    in[i].resize(in_elems[i]);\n"
    << "    for (auto& v : in[i]) {\n      s = s * 1103515245u + 12345u;\n"
    << "      v = static_cast<float>((s >> 8) % 2001) / 1000.0f - 1.0f;\n    }\n    inp[i] = in[i].data();\n  }\n"
    << "  size_t ws = 0;\n  if (" << n << "_workspace_bytes(dims, &ws, err, sizeof err)) { std::printf(\"%s\\n\", err); return 2; }\n"
    << "  std::vector<size_t> out_elems(no);\n"
    << "  for (size_t k = 0; k < no; ++k) {\n    int64_t od[8];\n    int rank = 0;\n"
    << "    if (" << n << "_output_dims(dims, static_cast<int>(k), od, &rank, err, sizeof err)) { std::printf(\"%s\\n\", err); return 2; }\n"
    << "    size_t e = 1;\n    for (int a = 0; a < rank; ++a) e *= static_cast<size_t>(od[a]);\n    out_elems[k] = e;\n  }\n"
    // Outputs as float-sized elements: the models here have float outputs (the test checks).
    << "  auto run = [&](std::vector<std::vector<float>>& out, std::vector<unsigned char>& w) {\n"
    << "    std::vector<void*> op(no);\n    for (size_t k = 0; k < no; ++k) op[k] = out[k].data();\n"
    << "    return " << n << "_run(dims, inp.data(), op.data(), w.data(), w.size(), err, sizeof err);\n  };\n"
    << "  std::vector<std::vector<float>> ref(no);\n  for (size_t k = 0; k < no; ++k) ref[k].assign(out_elems[k], 0.0f);\n"
    << "  std::vector<unsigned char> w0(ws);\n  if (run(ref, w0)) { std::printf(\"%s\\n\", err); return 2; }\n"
    << "  int bad[3] = {0, 0, 0};\n  std::vector<std::thread> th;\n"
    << "  for (int t = 0; t < 3; ++t)\n    th.emplace_back([&, t] {\n"
    << "      std::vector<std::vector<float>> out(no);\n      for (size_t k = 0; k < no; ++k) out[k].assign(out_elems[k], 0.0f);\n"
    << "      std::vector<unsigned char> w(ws);\n"
    << "      for (int it = 0; it < 20; ++it) {\n        char e2[512];\n        std::vector<void*> op(no);\n"
    << "        for (size_t k = 0; k < no; ++k) op[k] = out[k].data();\n"
    << "        if (" << n << "_run(dims, inp.data(), op.data(), w.data(), w.size(), e2, sizeof e2)) { ++bad[t]; continue; }\n"
    << "        for (size_t k = 0; k < no; ++k)\n"
    << "          if (std::memcmp(out[k].data(), ref[k].data(), out_elems[k] * sizeof(float)) != 0) ++bad[t];\n"
    << "      }\n    });\n"
    << "  for (auto& x : th) x.join();\n"
    << "  if (bad[0] + bad[1] + bad[2]) { std::printf(\"threads differ from the single-thread run\\n\"); return 1; }\n"
    << "  std::printf(\"threads agree\\n\");\n  return 0;\n}\n";
  return d.str();
}

// Compiles `model`, builds it with the driver under `sanitize` and runs it.
void check_under(const std::string& model, const std::string& name, const std::vector<int64_t>& dims,
                 const std::vector<int64_t>& in_elems, size_t n_outputs) {
  aot::CompileOptions o;
  o.name = name;
  const aot::CompileResult r = aot::compile_model(model, (out_root() / name).string(), o);
  std::ofstream(fs::path(r.dir) / "driver.cpp") << driver(r, dims, in_elems, n_outputs);
  struct Mode {
    const char* tag;
    const char* flags;
    const char* env;
  };
  const Mode modes[] = {
      {"asan", "-fsanitize=address,undefined -fno-sanitize-recover=all", "ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1"},
      {"tsan", "-fsanitize=thread", "TSAN_OPTIONS='halt_on_error=1 exitcode=66'"},
  };
  for (const Mode& m : modes) {
    SCOPED_TRACE(std::string(m.tag) + " " + name);
    const std::string exe = (fs::path(r.dir) / (std::string("driver_") + m.tag)).string();
    int rc = 0;
    const std::string cmd = "cd '" + r.dir + "' && g++ -std=c++17 -O1 -g -fno-omit-frame-pointer -Werror -Wall -Wextra -march=native " +
                            m.flags + " -pthread driver.cpp " + name + ".cpp " + name + "_weights.cpp -o '" + exe + "' && " +
                            m.env + " '" + exe + "'";
    const std::string out = aot_test::run_command(cmd, &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("threads agree"), std::string::npos) << out;
    EXPECT_EQ(out.find("Sanitizer"), std::string::npos) << out;
    EXPECT_EQ(out.find("runtime error"), std::string::npos) << out;
  }
}

const std::string kShared = QUIVER_SHARED_DIR;

// An MLP (batch 3) and a forest with categorical splits (batch 5).
TEST(AotSanitize, GeneratedMlpUnderAsanUbsanAndTsan) {
  check_under(kShared + "/models/hep/ticl_supercls/model.onnx", "san_ticl_supercls", {3}, {3 * 17}, 1);
}

TEST(AotSanitize, GeneratedForestUnderAsanUbsanAndTsan) {
  const std::string path = kShared + "/models/forest/xgboost/categorical/BinomialClassificationAuditNA.json";
  const int64_t nf = forest::ForestModel::load(path)->forest().n_features();
  check_under(path, "san_forest_audit", {5}, {5 * nf}, 2);
}

}  // namespace
