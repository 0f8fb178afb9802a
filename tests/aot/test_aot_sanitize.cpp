// The generated code under the sanitizers, in every build: a model's generated sources are compiled
// together with a small driver with -fsanitize=address,undefined (UBSan fatal) and, separately, with
// -fsanitize=thread, and run. The driver uses only the generated C ABI: one single-thread reference
// run (NAME_run), then three threads calling the same code at once (NAME_run_dims), each with its own
// workspace and outputs, which must give the reference bits and output_dims' dims; each build runs
// every case (dims) given. Any sanitizer report fails the
// run. The models cover dense layers, a forest, 2-D and 1-D convolutions, both LSTM forms and
// ParticleNet's TopK / Gather over run-time particle counts. (In a -DQUIVER_SANITIZE build,
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

// A driver for the compiled model `r` with `n_outputs` float outputs. Each run of it takes one case on
// its command line: the dims values (ABI order) and the element count of each float input, both
// comma-separated, so one build checks several batch sizes (e.g. both forms of a recurrent layer).
std::string driver(const aot::CompileResult& r, size_t n_outputs) {
  const std::string n = r.name;
  std::ostringstream d;
  d << "#include \"" << n << ".hpp\"\n#include <cstdio>\n#include <cstdlib>\n#include <cstring>\n#include <thread>\n"
    << "#include <vector>\n\n"
    << "static std::vector<long long> list(const char* s) {\n  std::vector<long long> v;\n"
    << "  for (char* e = nullptr; *s; s = *e ? e + 1 : e) v.push_back(std::strtoll(s, &e, 10));\n  return v;\n}\n\n"
    << "int main(int argc, char** argv) {\n  if (argc != 3) return 3;\n"
    << "  const std::vector<long long> dl = list(argv[1]), el = list(argv[2]);\n"
    << "  std::vector<int64_t> dims(dl.begin(), dl.end());\n  if (dims.empty()) dims.push_back(0);\n"
    << "  const size_t ni = el.size(), no = " << n_outputs << ";\n"
    << "  char err[512];\n"
    << "  std::vector<std::vector<float>> in(ni);\n  std::vector<const void*> inp(ni);\n"
    << "  unsigned s = 12345;\n"
    << "  for (size_t i = 0; i < ni; ++i) {\n    in[i].resize(static_cast<size_t>(el[i]));\n"
    << "    for (auto& v : in[i]) {\n      s = s * 1103515245u + 12345u;\n"
    << "      v = static_cast<float>((s >> 8) % 2001) / 1000.0f - 1.0f;\n    }\n    inp[i] = in[i].data();\n  }\n"
    << "  size_t ws = 0;\n  if (" << n << "_workspace_bytes(dims.data(), &ws, err, sizeof err)) { std::printf(\"%s\\n\", err); return 2; }\n"
    << "  std::vector<size_t> out_elems(no);\n  std::vector<int64_t> out_dims(no * 8);\n  std::vector<int> out_ranks(no);\n"
    << "  for (size_t k = 0; k < no; ++k) {\n    int64_t* od = out_dims.data() + k * 8;\n    int rank = 0;\n"
    << "    if (" << n << "_output_dims(dims.data(), static_cast<int>(k), od, &rank, err, sizeof err)) { std::printf(\"%s\\n\", err); return 2; }\n"
    << "    out_ranks[k] = rank;\n"
    << "    size_t e = 1;\n    for (int a = 0; a < rank; ++a) e *= static_cast<size_t>(od[a]);\n    out_elems[k] = e;\n  }\n"
    // Outputs as float-sized elements: the models here have float outputs (the test checks).
    << "  auto run = [&](std::vector<std::vector<float>>& out, std::vector<unsigned char>& w) {\n"
    << "    std::vector<void*> op(no);\n    for (size_t k = 0; k < no; ++k) op[k] = out[k].data();\n"
    << "    return " << n << "_run(dims.data(), inp.data(), op.data(), w.data(), w.size(), err, sizeof err);\n  };\n"
    << "  std::vector<std::vector<float>> ref(no);\n  for (size_t k = 0; k < no; ++k) ref[k].assign(out_elems[k], 0.0f);\n"
    << "  std::vector<unsigned char> w0(ws);\n  if (run(ref, w0)) { std::printf(\"%s\\n\", err); return 2; }\n"
    << "  int bad[3] = {0, 0, 0};\n  std::vector<std::thread> th;\n"
    << "  for (int t = 0; t < 3; ++t)\n    th.emplace_back([&, t] {\n"
    << "      std::vector<std::vector<float>> out(no);\n      for (size_t k = 0; k < no; ++k) out[k].assign(out_elems[k], 0.0f);\n"
    << "      std::vector<unsigned char> w(ws);\n"
    << "      for (int it = 0; it < 20; ++it) {\n        char e2[512];\n        std::vector<void*> op(no);\n"
    << "        for (size_t k = 0; k < no; ++k) op[k] = out[k].data();\n"
    // run_dims from the threads: the dims it reports are output_dims' (no output here depends on the data).
    << "        int ranks[8];\n        int64_t od[8 * 8];\n"
    << "        if (no > 8 || " << n << "_run_dims(dims.data(), inp.data(), op.data(), ranks, od, w.data(), w.size(), e2, sizeof e2)) { ++bad[t]; continue; }\n"
    << "        for (size_t k = 0; k < no; ++k)\n"
    << "          if (ranks[k] != out_ranks[k] || std::memcmp(od + k * 8, out_dims.data() + k * 8, static_cast<size_t>(ranks[k]) * 8) != 0) ++bad[t];\n"
    << "        for (size_t k = 0; k < no; ++k)\n"
    << "          if (std::memcmp(out[k].data(), ref[k].data(), out_elems[k] * sizeof(float)) != 0) ++bad[t];\n"
    << "      }\n    });\n"
    << "  for (auto& x : th) x.join();\n"
    << "  if (bad[0] + bad[1] + bad[2]) { std::printf(\"threads differ from the single-thread run\\n\"); return 1; }\n"
    << "  std::printf(\"threads agree\\n\");\n  return 0;\n}\n";
  return d.str();
}

// One run of the driver: dims values (ABI order) and each input's element count.
struct Case {
  std::vector<int64_t> dims, in_elems;
};

std::string joined(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// Compiles `model`, builds it with the driver under each sanitizer and runs every case.
void check_under(const std::string& model, const std::string& name, const std::vector<Case>& cases, size_t n_outputs) {
  aot::CompileOptions o;
  o.name = name;
  const aot::CompileResult r = aot::compile_model(model, (out_root() / name).string(), o);
  std::ofstream(fs::path(r.dir) / "driver.cpp") << driver(r, n_outputs);
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
    const std::string exe = (fs::path(r.dir) / (std::string("driver_") + m.tag)).string();
    int rc = 0;
    std::string cmd = "cd '" + r.dir + "' && g++ -std=c++17 -O1 -g -fno-omit-frame-pointer -Werror -Wall -Wextra -march=native " +
                      m.flags + " -pthread driver.cpp " + name + ".cpp " + name + "_weights.cpp -o '" + exe + "'";
    std::string out = aot_test::run_command(cmd, &rc);
    ASSERT_EQ(rc, 0) << m.tag << " " << name << ": build failed\n" << out;
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(m.tag) + " " + name + " dims " + joined(c.dims));
      out = aot_test::run_command(std::string(m.env) + " '" + exe + "' '" + joined(c.dims) + "' '" + joined(c.in_elems) + "'", &rc);
      EXPECT_EQ(rc, 0) << out;
      EXPECT_NE(out.find("threads agree"), std::string::npos) << out;
      EXPECT_EQ(out.find("Sanitizer"), std::string::npos) << out;
      EXPECT_EQ(out.find("runtime error"), std::string::npos) << out;
    }
  }
}

const std::string kShared = QUIVER_SHARED_DIR;

// An MLP (batch 3) and a forest with categorical splits (batch 5).
TEST(AotSanitize, GeneratedMlpUnderAsanUbsanAndTsan) {
  check_under(kShared + "/models/hep/ticl_supercls/model.onnx", "san_ticl_supercls", {{{3}, {3 * 17}}}, 1);
}

TEST(AotSanitize, GeneratedForestUnderAsanUbsanAndTsan) {
  const std::string path = kShared + "/models/forest/xgboost/categorical/BinomialClassificationAuditNA.json";
  const int64_t nf = forest::ForestModel::load(path)->forest().n_features();
  check_under(path, "san_forest_audit", {{{5}, {5 * nf}}}, 2);
}

// Convolutions (TICL energy-id: 2-D Conv, pooling, two outputs).
TEST(AotSanitize, GeneratedConvNetUnderAsanUbsanAndTsan) {
  check_under(kShared + "/models/hep/ticl_energy_id/model.onnx", "san_ticl_energy_id", {{{3}, {3 * 50 * 10 * 3}}}, 2);
}

// DeepJet: 1-D convolutions and an LSTM, in both of its forms: 3 rows take the per-row recurrence,
// 16 rows the batched form (one GEMM per step, subnormals flushed inside the call).
TEST(AotSanitize, GeneratedLstmNetUnderAsanUbsanAndTsan) {
  auto deepjet = [](int64_t n) { return Case{{n}, {n * 15, n * 25 * 16, n * 25 * 6, n * 4 * 12, n}}; };
  check_under(kShared + "/models/hep/deepjet_run3/model.onnx", "san_deepjet", {deepjet(3), deepjet(16)}, 2);
}

// ParticleNet-AK4: k-nearest neighbours (TopK, Gather with run-time indices) over a run-time particle
// count, EdgeConv blocks; dims (N, n_pf, n_sv) in the ABI's order.
TEST(AotSanitize, GeneratedParticleNetUnderAsanUbsanAndTsan) {
  const int64_t n = 2, pf = 25, sv = 4;
  check_under(kShared + "/models/hep/particlenet_ak4_hlt/model.onnx", "san_particlenet",
              {{{n, pf, sv}, {n * 2 * pf, n * 23 * pf, n * pf, n * 2 * sv, n * 11 * sv, n * sv}}}, 1);
}

}  // namespace
